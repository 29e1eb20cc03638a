"""Constrained value types shared by every spec version.

These are the injection guard: anything that can reach a device configuration
is restricted here to a safe character set, so no YAML author can smuggle a
newline, ``;``, ``}``, ``#`` or ``!`` into a rendered config.
"""

from __future__ import annotations

import ipaddress
import re
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


def _no_control(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("control characters (such as newlines) are not allowed")
    return value


FreeText = Annotated[
    str,
    StringConstraints(max_length=500),
    AfterValidator(_no_control),
    Field(description="Free text for people; never rendered into device configs."),
]

DSCP_NAMES: dict[str, int] = {
    "default": 0,
    "df": 0,
    "be": 0,
    "le": 1,
    **{f"cs{i}": i * 8 for i in range(1, 8)},
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


def _parse_dscp(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("DSCP must be a name such as ef or af41, or a number 0-63")
    if isinstance(value, str):
        key = value.strip().lower()
        if key in DSCP_NAMES:
            return DSCP_NAMES[key]
        if key.isdigit():
            return int(key)
        raise ValueError(f"unknown DSCP {value!r}: use ef, af11-af43, cs0-cs7, le, default or a number 0-63")
    return value


Dscp = Annotated[
    int,
    BeforeValidator(_parse_dscp),
    Field(ge=0, le=63),
    WithJsonSchema(
        {
            "description": "DSCP as a name (ef, af41, cs1, le, default) or a number 0-63.",
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 63},
                {"type": "string", "enum": sorted(DSCP_NAMES)},
            ],
        }
    ),
]

_RANGE = re.compile(r"^(\d{1,5})-(\d{1,5})$")


def _parse_port(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a port is a number 1-65535 or a range 'low-high'")
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            raise ValueError(f"port {value} is outside 1-65535")
        return (value, value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return _parse_port(int(text))
        m = _RANGE.match(text)
        if m:
            low, high = int(m.group(1)), int(m.group(2))
            if not (1 <= low <= high <= 65535):
                raise ValueError(f"port range {text!r} must satisfy 1 <= low <= high <= 65535")
            return (low, high)
    raise ValueError(f"{value!r} is not a port: use a number 1-65535 or a range such as '16384-32767'")


PortRange = Annotated[
    tuple[int, int],
    BeforeValidator(_parse_port),
    WithJsonSchema(
        {
            "description": "A port 1-65535 or a range such as '16384-32767'.",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": r"^\d{1,5}-\d{1,5}$"},
            ],
        }
    ),
]


def _parse_prefix(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value.strip(), strict=True)
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a network prefix ({exc}); write it like 10.20.0.0/16 or 2001:db8::/32"
            ) from None
    return value


Prefix = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    BeforeValidator(_parse_prefix),
    WithJsonSchema({"type": "string", "description": "An IPv4 or IPv6 prefix, e.g. 10.20.0.0/16."}),
]
