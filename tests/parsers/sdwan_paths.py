"""Transitional: each SD-WAN platform's ``paths`` is in its ``controller.platforms.<name>.parser``."""

from __future__ import annotations

from controller.platforms.cisco_sdwan import parser as cisco
from controller.platforms.fortios_sdwan import parser as fortios
from controller.platforms.linux import parser as linux_parser
from controller.platforms.meaning import DevicePaths, PathChoice, PathParser

__all__ = ["PATH_PARSERS", "DevicePaths", "PathChoice"]

PATH_PARSERS: dict[str, PathParser] = {
    "cisco_sdwan": cisco.paths,
    "fortios_sdwan": fortios.paths,
    "linux": linux_parser.paths,
}
