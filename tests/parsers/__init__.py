"""Transitional: the parsers moved to ``controller.platforms.<name>.parser`` (types in controller.platforms.meaning)."""

from __future__ import annotations

from controller.platforms.arista_eos import parser as arista_eos
from controller.platforms.cisco_iosxe import parser as cisco_iosxe
from controller.platforms.cisco_sdwan import parser as cisco_sdwan
from controller.platforms.fortios_sdwan import parser as fortios_sdwan
from controller.platforms.juniper_junos import parser as juniper_junos
from controller.platforms.linux import parser as linux
from controller.platforms.meaning import (
    ControlParser,
    ControlTreatment,
    DeviceTreatment,
    JourneyTreatment,
    ParseError,
    Parser,
    Queue,
    dscp_value,
    journey_key,
)

__all__ = [
    "CONTROL_PARSERS",
    "PARSERS",
    "ControlTreatment",
    "DeviceTreatment",
    "JourneyTreatment",
    "ParseError",
    "Queue",
    "arista_eos",
    "cisco_iosxe",
    "cisco_sdwan",
    "dscp_value",
    "fortios_sdwan",
    "journey_key",
    "juniper_junos",
    "linux",
]

_ALL = (linux, cisco_iosxe, juniper_junos, arista_eos, cisco_sdwan, fortios_sdwan)
PARSERS: dict[str, Parser] = {m.__name__.split(".")[-2]: m.parse for m in _ALL}
CONTROL_PARSERS: dict[str, ControlParser] = {
    m.__name__.split(".")[-2]: m.control for m in _ALL if hasattr(m, "control")
}
