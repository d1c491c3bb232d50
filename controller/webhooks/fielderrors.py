"""Field-level validation errors that render exactly like Kubernetes' ``field.Error`` / ``field.ErrorList``.

Role: every admission answer of our webhooks is built from these records, so the text a user sees from
``kubectl apply`` is byte-for-byte what the reference controller (Go, apimachinery) prints, e.g.
``spec.replicatedJobs[0].name: Invalid value: "x": ...``.

Rendering rules (apimachinery ``field/errors.go``, ``api/errors.NewInvalid``, ``util/errors.Aggregate``):

* ``Error()`` is ``"<field>: <body>"``; the body is the type's text, then ``": <bad value>"`` for the value
  carrying types (Invalid, TypeInvalid, NotSupported, NotFound, Duplicate, TooMany) unless the value is
  omitted, then ``": <detail>"`` when a detail exists.
* bad values print like Go's ``fmt``: strings ``%q``-quoted, ints/bools/floats ``%v``, anything else as
  ``encoding/json`` output (sorted keys, ``<``/``>``/``&`` escaped), ``nil`` as ``null``.
* an aggregate of one error is that error's text; of several, ``[a, b]`` after dropping repeated texts.
* a 422 Status message is ``<Kind>.<group> "<name>" is invalid: <aggregate>`` with one cause per error.

Invariants: records are immutable; rendering never raises, whatever the bad value (unencodable or deeply
nested values degrade to a placeholder instead).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

import orjson

__all__ = ["OMIT", "ErrorList", "ErrorType", "FieldError", "Path", "go_quote", "invalid_status", "render_value"]


class ErrorType(StrEnum):
    """Machine-readable cause types (``metav1.CauseType``)."""

    NOT_FOUND = "FieldValueNotFound"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"
    INVALID = "FieldValueInvalid"
    NOT_SUPPORTED = "FieldValueNotSupported"
    FORBIDDEN = "FieldValueForbidden"
    TOO_LONG = "FieldValueTooLong"
    TOO_MANY = "FieldValueTooMany"
    INTERNAL = "InternalError"
    TYPE_INVALID = "FieldValueTypeInvalid"

    @property
    def text(self) -> str:
        return _TYPE_TEXT[self]


_TYPE_TEXT: Final = {
    ErrorType.NOT_FOUND: "Not found",
    ErrorType.REQUIRED: "Required value",
    ErrorType.DUPLICATE: "Duplicate value",
    ErrorType.INVALID: "Invalid value",
    ErrorType.NOT_SUPPORTED: "Unsupported value",
    ErrorType.FORBIDDEN: "Forbidden",
    ErrorType.TOO_LONG: "Too long",
    ErrorType.TOO_MANY: "Too many",
    ErrorType.INTERNAL: "Internal error",
    ErrorType.TYPE_INVALID: "Invalid value",
}

# Types whose body never shows the bad value.
_VALUELESS: Final = frozenset({ErrorType.REQUIRED, ErrorType.FORBIDDEN, ErrorType.TOO_LONG, ErrorType.INTERNAL})


class _Omit:
    """Sentinel for "do not print the bad value" (apimachinery's ``omitValue``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = _Omit()


class Path:
    """A field path such as ``spec.replicatedJobs[0].name``.

    Extending is O(1) (a parent link and a segment); the text is rendered on first use and cached, because
    parsing builds a path for every field it reads but only the few that carry an error are ever printed.
    """

    __slots__ = ("_parent", "_segment", "_text")

    def __init__(self, text: str = "") -> None:
        self._parent: Path | None = None
        self._segment = ""
        self._text: str | None = text

    @classmethod
    def _extend(cls, parent: Path, segment: str) -> Path:
        path = cls.__new__(cls)
        path._parent, path._segment, path._text = parent, segment, None
        return path

    def child(self, *names: str) -> Path:
        path = self
        for name in names:
            path = Path._extend(path, "." + name)
        return path

    def index(self, i: int) -> Path:
        return Path._extend(self, f"[{i}]")

    def key(self, k: str) -> Path:
        return Path._extend(self, f"[{k}]")

    @property
    def text(self) -> str:
        if self._text is not None:
            return self._text
        segments: list[str] = []
        node: Path | None = self
        while node is not None and node._text is None:
            segments.append(node._segment)
            node = node._parent
        text: str = node._text if node is not None and node._text is not None else ""
        for segment in reversed(segments):
            # A child of the empty root has no leading dot.
            text = segment[1:] if not text and segment.startswith(".") else text + segment
        self._text = text
        return text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Path({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` (what ``%q`` prints): printable runes kept, everything else escaped."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(_go_escape(ch))
    out.append('"')
    return "".join(out)


_GO_SHORT_ESCAPES: Final = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_escape(ch: str) -> str:
    if ch in _GO_SHORT_ESCAPES:
        return _GO_SHORT_ESCAPES[ch]
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate is not valid UTF-8; Go would have decoded it as U+FFFD
        return "\ufffd"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _go_float(f: float) -> str:
    """Go's ``%v`` for a float64: shortest digits, exponent form from 1e6 up or below 1e-4."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(f)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    point = exponent + len(digit_tuple)  # position of the decimal point relative to the digits
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def _go_json(value: Any) -> str:
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        try:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            return '"<value omitted>"'
    # encoding/json escapes HTML-significant characters and the JS line separators.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_value(value: Any) -> str:
    """How ``field.Error`` prints a bad value (see the module docstring)."""
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if value is None:
        return "null"
    if isinstance(value, BaseException):
        return go_quote(str(value))
    return _go_json(value)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field error: type, rendered field path, bad value (or ``OMIT``) and detail."""

    type: ErrorType
    field: str
    bad_value: Any = OMIT
    detail: str = ""

    # -- constructors mirroring apimachinery's field package -------------------------------------------
    @classmethod
    def invalid(cls, path: Path, value: Any, detail: str) -> FieldError:
        return cls(ErrorType.INVALID, str(path), value, detail)

    @classmethod
    def type_invalid(cls, path: Path, value: Any, detail: str) -> FieldError:
        return cls(ErrorType.TYPE_INVALID, str(path), value, detail)

    @classmethod
    def required(cls, path: Path, detail: str = "") -> FieldError:
        return cls(ErrorType.REQUIRED, str(path), "", detail)

    @classmethod
    def forbidden(cls, path: Path, detail: str) -> FieldError:
        return cls(ErrorType.FORBIDDEN, str(path), "", detail)

    @classmethod
    def duplicate(cls, path: Path, value: Any) -> FieldError:
        return cls(ErrorType.DUPLICATE, str(path), value)

    @classmethod
    def not_found(cls, path: Path, value: Any) -> FieldError:
        return cls(ErrorType.NOT_FOUND, str(path), value)

    @classmethod
    def not_supported(cls, path: Path, value: Any, valid: Sequence[str]) -> FieldError:
        detail = "supported values: " + ", ".join(go_quote(v) for v in valid) if valid else ""
        return cls(ErrorType.NOT_SUPPORTED, str(path), value, detail)

    @classmethod
    def too_long(cls, path: Path, max_length: int) -> FieldError:
        unit = "byte" if max_length == 1 else "bytes"
        detail = f"may not be more than {max_length} {unit}" if max_length >= 0 else "value is too long"
        return cls(ErrorType.TOO_LONG, str(path), "<value omitted>", detail)

    @classmethod
    def too_many(cls, path: Path, actual: int, max_quantity: int) -> FieldError:
        unit = "item" if max_quantity == 1 else "items"
        detail = f"must have at most {max_quantity} {unit}" if max_quantity >= 0 else "has too many items"
        return cls(ErrorType.TOO_MANY, str(path), actual if actual >= 0 else OMIT, detail)

    @classmethod
    def internal(cls, path: Path, message: str) -> FieldError:
        return cls(ErrorType.INTERNAL, str(path), OMIT, message)

    # -- rendering ---------------------------------------------------------------------------------------
    def body(self) -> str:
        """``ErrorBody()``: the message without the field path."""
        if self.type in _VALUELESS or self.bad_value is OMIT:
            text = self.type.text
        else:
            text = f"{self.type.text}: {render_value(self.bad_value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> dict[str, str]:
        """The ``metav1.StatusCause`` the API server returns for this error."""
        return {"reason": self.type.value, "message": self.body(), "field": self.field}


class ErrorList(list[FieldError]):
    """An ordered list of field errors; empty means "allowed"."""

    def aggregate(self) -> str:
        """``ErrorList.ToAggregate().Error()``: repeated texts dropped, several errors bracketed."""
        seen: dict[str, None] = {}
        for err in self:
            seen.setdefault(str(err), None)
        texts = list(seen)
        if not texts:
            return ""
        if len(texts) == 1:
            return texts[0]
        return "[" + ", ".join(texts) + "]"

    def fields(self) -> list[str]:
        return [err.field for err in self]

    def __str__(self) -> str:
        return self.aggregate()

    @classmethod
    def of(cls, errors: Iterable[FieldError]) -> ErrorList:
        return cls(errors)


def invalid_status(kind: str, group: str, name: str, errors: Sequence[FieldError]) -> dict[str, Any]:
    """The 422 ``Status`` of ``apierrors.NewInvalid(GroupKind{group, kind}, name, errors)``."""
    qualified = f"{kind}.{group}" if group else kind
    aggregate = ErrorList(errors).aggregate()
    message = f"{qualified} {go_quote(name)} is invalid"
    if aggregate:
        message += f": {aggregate}"
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [err.cause() for err in errors],
        },
        "code": 422,
    }
