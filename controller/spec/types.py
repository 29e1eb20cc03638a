"""Constrained value types shared by every spec version.

These are the injection guard: anything that can reach a device configuration
is restricted here to a safe character set, so no YAML author can smuggle a
newline, ``;``, ``}``, ``#`` or ``!`` into a rendered config.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
INTERFACE_PATTERN = r"^[A-Za-z][A-Za-z0-9_./:-]{0,63}$"
HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
FILE_PATTERN = r"^[A-Za-z0-9_./~-][A-Za-z0-9_./~ -]{0,254}$"

Name = Annotated[
    str,
    StringConstraints(pattern=NAME_PATTERN),
    Field(description="Letters, digits, '-', '_' and '.', starting with a letter or digit (max 63)."),
]
InterfaceName = Annotated[
    str,
    StringConstraints(pattern=INTERFACE_PATTERN),
    Field(description="Interface name as the device knows it, e.g. GigabitEthernet0/0/1 or eth0."),
]
Host = Annotated[
    str,
    StringConstraints(pattern=HOST_PATTERN),
    Field(description="Management address or DNS name."),
]
EnvVarName = Annotated[
    str,
    StringConstraints(pattern=ENV_PATTERN),
    Field(description="Name of an environment variable (never the secret itself)."),
]
FilePath = Annotated[str, StringConstraints(pattern=FILE_PATTERN)]


class SpecValueError(ValueError):
    """A value problem with a separate hint of what would be right (printed as ``...; hint: ...``).

    Pydantic keeps the exception in the error's context, so the loader can show the hint apart
    from the message.
    """

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


# Bidirectional overrides/isolates ("Trojan Source", CVE-2021-42574): text that reads differently than it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _text_problem(value: str, allowed: str) -> str:
    for c in value:
        if c in allowed:
            continue
        if unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _BIDI_CONTROLS:
            raise SpecValueError(
                f"control or line-separator character {c!r} is not allowed",
                "write it on one line, without control characters (newlines, U+0085, U+2028 ...)"
                if not allowed
                else "use ordinary line breaks (YAML | or >) and no other control characters (tab, CR, U+2028 ...)",
            )
    return value


def _no_control(value: str) -> str:
    """Reject anything that can end or fake a line: C0/C1 controls (\\n, \\r, NEL U+0085), the Unicode
    line and paragraph separators (U+2028, U+2029) and bidi overrides. Free text is shown in terminals,
    diffs and reports, where each of these can forge or hide a line."""
    return _text_problem(value, "")


def _no_control_but_newlines(value: str) -> str:
    """Like :func:`_no_control`, but ``\\n`` is allowed: text that never reaches a config, only people."""
    return _text_problem(value, "\n")


# The same rules as ECMA-262 patterns for the JSON Schema (Cc is U+0000-U+001F and U+007F-U+009F; Zl and Zp are
# U+2028 and U+2029). tests/test_schema_corpus.py compares them with the functions above for every code point.
_CONTROLS = r"\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069"
ONE_LINE_TEXT_PATTERN = rf"^[^{_CONTROLS}\u000a]*$"
MULTI_LINE_TEXT_PATTERN = rf"^[^{_CONTROLS}]*$"

FreeText = Annotated[
    str,
    StringConstraints(max_length=500),
    AfterValidator(_no_control),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 500,
            "pattern": ONE_LINE_TEXT_PATTERN,
            "patternErrorMessage": "one line, without control characters (newline, tab, U+2028 ...)",
            "description": "Free text for people, on one line; never rendered into device configs.",
        }
    ),
]
Description = Annotated[
    str,
    StringConstraints(max_length=500),
    AfterValidator(_no_control_but_newlines),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 500,
            "pattern": MULTI_LINE_TEXT_PATTERN,
            "patternErrorMessage": "ordinary line breaks only: no other control characters (tab, CR, U+2028 ...)",
            "description": "Text for people, one or more lines (YAML | or >); never rendered into device configs.",
        }
    ),
]

DSCP_NAMES: dict[str, int] = {
    "default": 0,
    "df": 0,
    "be": 0,
    "le": 1,
    **{f"cs{i}": i * 8 for i in range(8)},  # cs0 is 0, as RFC 2474 names it
    **{f"af{c}{d}": c * 8 + d * 2 for c in range(1, 5) for d in range(1, 4)},
    "ef": 46,
    "va": 44,
}
DSCP_BY_VALUE: dict[int, str] = {}
for _name, _value in DSCP_NAMES.items():
    if _name not in ("df", "be"):
        DSCP_BY_VALUE.setdefault(_value, _name)


def dscp_name(value: int) -> str:
    return DSCP_BY_VALUE.get(value, str(value))


_ASCII_NUMBER = re.compile(r"[0-9]{1,5}", re.ASCII)
_DSCP_HINT = "use ef, af11-af43, cs0-cs7, le, default or a number 0-63"
_PORT_HINT = "use a number 1-65535 or a range such as '16384-32767'"
_PREFIX_HINT = "write it like 198.18.0.0/15 or 2001:db8::/32"

# ECMA-262 patterns (what JSON Schema validators and editors use) for the string spellings the parsers below
# accept; tests/test_schema_corpus.py compares them with the parsers value by value. Editors show a pattern's
# "patternErrorMessage" (yaml-language-server) instead of the pattern; other validators ignore it.
_DIGITS_0_63 = "(?:[0-9]|[1-5][0-9]|6[0-3])"
_DIGITS_1_65535 = "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_PORT = rf"0*{_DIGITS_1_65535}"
PORT_TEXT_PATTERN = rf"^(?:(?=[0-9]{{1,5}}$){_PORT}|(?=[0-9]{{1,5}}-[0-9]{{1,5}}$){_PORT}-{_PORT})$"


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)


def _parse_dscp(value: Any) -> Any:
    if isinstance(value, bool):
        raise SpecValueError("DSCP must be a name or a number, not true/false", _DSCP_HINT)
    if isinstance(value, str):
        # Exact spelling only (no surrounding blanks, ASCII digits only): what is written is what is meant.
        key = value.lower()
        if key in DSCP_NAMES:
            return DSCP_NAMES[key]
        if _ASCII_NUMBER.fullmatch(value):
            return int(value)
        raise SpecValueError(f"unknown DSCP {value!r}", _DSCP_HINT)
    return value


DSCP_TEXT_PATTERN = (
    "^(?:" + "|".join(_any_case(n) for n in sorted(DSCP_NAMES)) + rf"|(?=[0-9]{{1,5}}$)0*{_DIGITS_0_63})$"
)

Dscp = Annotated[
    int,
    BeforeValidator(_parse_dscp),
    Field(ge=0, le=63),
    WithJsonSchema(
        {
            "description": "DSCP as a name (ef, af41, cs1, le, default) or a number 0-63.",
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 63},
                {"type": "string", "enum": sorted(DSCP_NAMES)},  # what editors offer
                # what is accepted: any case, "46", "046"
                {"type": "string", "pattern": DSCP_TEXT_PATTERN, "patternErrorMessage": _DSCP_HINT},
            ],
        }
    ),
]

_RANGE = re.compile(r"([0-9]{1,5})-([0-9]{1,5})", re.ASCII)


def _parse_port(value: Any) -> Any:
    if isinstance(value, bool):
        raise SpecValueError("a port must be a number or a range, not true/false", _PORT_HINT)
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            raise SpecValueError(f"port {value} is outside 1-65535", _PORT_HINT)
        return (value, value)
    if isinstance(value, str):
        # ASCII digits only and no blanks: str.isdigit() would also accept Arabic-Indic or full-width digits.
        if _ASCII_NUMBER.fullmatch(value):
            return _parse_port(int(value))
        m = _RANGE.fullmatch(value)
        if m:
            low, high = int(m.group(1)), int(m.group(2))
            if not (1 <= low <= high <= 65535):
                raise SpecValueError(f"port range {value!r} must satisfy 1 <= low <= high <= 65535", _PORT_HINT)
            return (low, high)
    raise SpecValueError(f"{value!r} is not a port", _PORT_HINT)


PortRange = Annotated[
    tuple[int, int],
    BeforeValidator(_parse_port),
    WithJsonSchema(
        {
            "description": "A port 1-65535 or a range such as '16384-32767'.",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": PORT_TEXT_PATTERN, "patternErrorMessage": _PORT_HINT},
            ],
        }
    ),
]


# Hex digits, '.', ':' and one '/len': no blanks, no IPv6 zone ('%eth0' is kept verbatim by ipaddress
# and would reach the config), nothing else.
_PREFIX_TEXT = re.compile(r"[0-9A-Fa-f.:]{2,39}(/[0-9]{1,3})?", re.ASCII)


def _parse_prefix(value: Any) -> Any:
    if isinstance(value, str):
        if "%" in value:
            raise SpecValueError(f"{value!r}: IPv6 zone ids (%...) are not allowed in a prefix", _PREFIX_HINT)
        if not _PREFIX_TEXT.fullmatch(value):
            raise SpecValueError(f"{value!r} is not a network prefix", _PREFIX_HINT)
        try:
            return ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise SpecValueError(f"{value!r} is not a network prefix ({exc})", _PREFIX_HINT) from None
    return value


def _ipv6(hextets: int, tail: str) -> str:
    """IPv6 text as :mod:`ipaddress` reads it: ``hextets`` groups, or fewer with one ``::`` standing for at least
    one group, followed by ``tail`` (an IPv4 address standing for the last two groups, or nothing)."""
    h = "[0-9A-Fa-f]{1,4}"
    forms = [f"(?:{h}:){{{hextets}}}{tail}" if tail else f"(?:{h}:){{{hextets - 1}}}{h}"]
    for left in range(hextets):
        head = f"(?:{h}:){{{left - 1}}}{h}" if left > 1 else h * left
        most = hextets - 1 - left  # groups right of '::'
        if tail:
            forms.append(f"{head}::" + (f"(?:{h}:){{0,{most}}}" if most else "") + tail)
        elif most:
            forms.append(f"{head}::(?:{h}" + (f"(?::{h}){{0,{most - 1}}}" if most > 1 else "") + ")?")
        else:
            forms.append(f"{head}::")
    return "(?:" + "|".join(forms) + ")"


_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_IPV6 = f"(?:{_ipv6(8, '')}|{_ipv6(6, _IPV4)})"
PREFIX_PATTERN = (
    r"^(?=[0-9A-Fa-f.:]{2,39}(?:/|$))"
    rf"(?:{_IPV4}(?:/(?=[0-9]{{1,3}}$)0*(?:3[0-2]|[12]?[0-9]))?"
    rf"|{_IPV6}(?:/(?=[0-9]{{1,3}}$)0*(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$"
)

_ADDRESS_HINT = "write the next hop's address, like 198.51.100.1 or fe80::1 (no prefix length, no %zone)"
ADDRESS_PATTERN = rf"^(?=[0-9A-Fa-f.:]{{2,39}}$)(?:{_IPV4}|{_IPV6})$"


_DOTTED_QUAD = re.compile(rf"({_OCTET})\.({_OCTET})\.({_OCTET})\.({_OCTET})")  # what IPv4Address accepts
_ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f.:]{2,39}")


def _ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """:func:`ipaddress.ip_address`, with plain dotted quads read by one regex (an inventory holds thousands)."""
    quad = _DOTTED_QUAD.fullmatch(value)
    if quad is None:
        return ipaddress.ip_address(value)
    return ipaddress.IPv4Address(int(quad[1]) << 24 | int(quad[2]) << 16 | int(quad[3]) << 8 | int(quad[4]))


def _parse_address(value: Any) -> Any:
    """A unicast IPv4/IPv6 address (a next hop): not a prefix, no zone id, not 0.0.0.0/::, loopback or multicast."""
    if isinstance(value, str):
        if "%" in value:
            raise SpecValueError(f"{value!r}: IPv6 zone ids (%...) are not allowed in an address", _ADDRESS_HINT)
        if not _ADDRESS_CHARS.fullmatch(value):
            raise SpecValueError(f"{value!r} is not an IPv4 or IPv6 address", _ADDRESS_HINT)
        try:
            addr = _ip_address(value)
        except ValueError as exc:
            raise SpecValueError(f"{value!r} is not an IPv4 or IPv6 address ({exc})", _ADDRESS_HINT) from None
        if addr.is_unspecified or addr.is_loopback or addr.is_multicast:
            raise SpecValueError(f"{value!r} cannot be a next hop (unspecified, loopback or multicast)", _ADDRESS_HINT)
        return addr
    return value


Address = Annotated[
    ipaddress.IPv4Address | ipaddress.IPv6Address,
    BeforeValidator(_parse_address),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": ADDRESS_PATTERN,
            "patternErrorMessage": _ADDRESS_HINT,
            "description": "An IPv4 or IPv6 unicast address, e.g. 198.51.100.1 or fe80::1.",
        }
    ),
]

Prefix = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    BeforeValidator(_parse_prefix),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": PREFIX_PATTERN,
            "patternErrorMessage": _PREFIX_HINT,
            "description": "An IPv4 or IPv6 prefix, e.g. 10.20.0.0/16 (host bits zero: checked by qoectl validate).",
        }
    ),
]
