"""Kubernetes name and value validators with apimachinery's exact messages.

Role: the string checks the JobSet webhook relies on — DNS-1123 subdomain and label, DNS-1035 label, label
value, domain-prefixed path — returning the same message strings as ``k8s.io/apimachinery``'s
``util/validation`` (which users see verbatim in admission errors).

Invariants: pure functions, no exceptions for any ``str`` input; lengths are counted in UTF-8 bytes like Go's
``len``; an empty result means valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from controller.webhooks.fielderrors import ErrorList, FieldError, Path

__all__ = [
    "DNS1035_LABEL_MAX_LENGTH",
    "DNS1123_LABEL_MAX_LENGTH",
    "DNS1123_SUBDOMAIN_MAX_LENGTH",
    "LABEL_VALUE_MAX_LENGTH",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_domain_prefixed_path",
    "is_valid_label_value",
    "max_len_error",
    "regex_error",
]

DNS1123_LABEL_MAX_LENGTH: Final = 63
DNS1123_SUBDOMAIN_MAX_LENGTH: Final = 253
DNS1035_LABEL_MAX_LENGTH: Final = 63
LABEL_VALUE_MAX_LENGTH: Final = 63

_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT: Final = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_FMT: Final = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG: Final = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
_QUALIFIED_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT: Final = "(" + _QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_HTTP_PATH_FMT: Final = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"

_DNS1123_LABEL_RE: Final = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(_DNS1123_SUBDOMAIN_FMT)
_HTTP_PATH_RE: Final = re.compile(_HTTP_PATH_FMT)


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's ``RegexError``: the message, examples, and the regex used."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _blen(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def _full(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _full(_DNS1123_LABEL_RE, value):
        if _full(_DNS1123_SUBDOMAIN_RE, value):
            # A valid subdomain but not a label: the length is already checked, so it must be the dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


@dataclass(frozen=True)
class _Format:
    """A name format apimachinery checks in two steps, in this order: at most ``max_length`` UTF-8 bytes, then
    the whole value matches ``pattern`` (reported with ``msg``, the ``examples`` and the pattern's text)."""

    max_length: int
    pattern: re.Pattern[str]
    msg: str
    examples: tuple[str, ...]

    def errors(self, value: str) -> list[str]:
        errs: list[str] = []
        if _blen(value) > self.max_length:
            errs.append(max_len_error(self.max_length))
        if not _full(self.pattern, value):
            errs.append(regex_error(self.msg, self.pattern.pattern, *self.examples))
        return errs


_DNS1123_SUBDOMAIN: Final = _Format(
    DNS1123_SUBDOMAIN_MAX_LENGTH, _DNS1123_SUBDOMAIN_RE, _DNS1123_SUBDOMAIN_MSG, ("example.com",)
)
_DNS1035_LABEL: Final = _Format(
    DNS1035_LABEL_MAX_LENGTH, re.compile(_DNS1035_LABEL_FMT), _DNS1035_LABEL_MSG, ("my-name", "abc-123")
)
_LABEL_VALUE: Final = _Format(  # matches the empty string too
    LABEL_VALUE_MAX_LENGTH, re.compile(_LABEL_VALUE_FMT), _LABEL_VALUE_MSG, ("MyValue", "my_value", "12345")
)


def is_dns1123_subdomain(value: str) -> list[str]:
    return _DNS1123_SUBDOMAIN.errors(value)


def is_dns1035_label(value: str) -> list[str]:
    return _DNS1035_LABEL.errors(value)


def is_valid_label_value(value: str) -> list[str]:
    return _LABEL_VALUE.errors(value)


def is_domain_prefixed_path(path: Path, value: str) -> ErrorList:
    """``IsDomainPrefixedPath``: ``<DNS-1123 subdomain>/<HTTP path characters>``, e.g. ``acme.io/foo``."""
    errs = ErrorList()
    if not value:
        errs.append(FieldError.required(path, ""))
        return errs
    host, sep, rest = value.partition("/")
    if not sep or not host or not rest:
        errs.append(FieldError.invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")'))
        return errs
    errs.extend(FieldError.invalid(path, host, msg) for msg in is_dns1123_subdomain(host))
    if not _full(_HTTP_PATH_RE, rest):
        errs.append(FieldError.invalid(path, rest, regex_error("Invalid path", _HTTP_PATH_FMT)))
    return errs
