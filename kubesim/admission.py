"""Admission webhooks (filled in by a later commit)."""

from __future__ import annotations

from kubesim.store import Store


def install(store: Store) -> None:
    """Enable webhook admission on ``store``."""
    del store
