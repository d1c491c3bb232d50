"""OpenAPI v3 schema validation and CEL rules for custom resources (filled in by the next commit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

JSON = dict[str, Any]


class SchemaValidator:
    """Validates objects against one structural schema."""

    def __init__(self, schema: JSON) -> None:
        self.schema = schema

    def validate(self, obj: JSON, old: JSON | None) -> Iterator[JSON]:
        return iter(())
