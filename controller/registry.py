"""The platforms qoectl knows: every package registered in the entry point group ``qoectl.platforms``.

A platform is one Python package plus one template folder. Its distribution
registers it by name (the name is the inventory's ``platform:``)::

    [project.entry-points."qoectl.platforms"]
    acme_os = "acme_qoectl"          # the package, never an object in it

and the package has three parts, each a module qoectl imports only when it
needs it (planning never imports an apply driver, and so never netmiko):

``renderer``  ``RENDERER``: a :class:`controller.render.base.Renderer` (its
              capabilities, limits, outputs, template folder and ``context()``)
``parser``    ``parse(files)``: the meaning of the platform's config text
              (:mod:`controller.configtext.meaning`)
``driver``    ``DRIVER``: a :class:`controller.apply.drivers.base.Driver`
              subclass, or ``DRIVER = None`` with ``UNSUPPORTED = "why"``
              for a platform that qoectl plans for but does not apply to

The six built-in platforms (``controller/platforms/<name>/``) are registered
the same way, in qoectl's own ``pyproject.toml``. A registration whose name is
not a plain identifier, whose package cannot be found or lacks a part, or that
takes a name already taken, is refused with a message naming the distribution
and what is missing (:class:`PlatformError`). This module is a leaf: the stages
ask it for a part by name and check the part's type themselves.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "qoectl.platforms"
Part = Literal["renderer", "parser", "driver"]
# The part modules and the attribute each must define.
PARTS: dict[Part, str] = {"renderer": "RENDERER", "parser": "parse", "driver": "DRIVER"}
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class PlatformError(Exception):
    """A platform registration that qoectl refuses, or a part that does not keep the contract."""


@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    package: str
    distribution: str

    def where(self) -> str:
        return f"platform {self.name!r} ({self.package}, registered by {self.distribution} in {GROUP})"


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _check(ep: EntryPoint) -> tuple[Registration | None, list[str]]:
    reg = Registration(ep.name, ep.value, _distribution(ep))
    if not NAME.fullmatch(ep.name):
        return None, [f"{reg.where()}: the name must be lower-case letters, digits and _ (at most 40), first a letter"]
    if ":" in ep.value:
        return None, [f"{reg.where()}: the entry point must name the platform's package, not an object in it"]
    try:
        found = importlib.util.find_spec(ep.value) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return None, [f"{reg.where()}: package {ep.value} cannot be imported"]
    missing = [p for p in PARTS if importlib.util.find_spec(f"{ep.value}.{p}") is None]
    if missing:
        parts = ", ".join(f"{ep.value}.{p} (defining {PARTS[p]})" for p in missing)
        return None, [f"{reg.where()}: a platform needs a renderer, a parser and a driver; missing {parts}"]
    return reg, []


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group``; importlib.metadata is imported here, when the platforms are first asked
    for (~15 ms a command that needs no platform does not spend)."""
    from importlib.metadata import entry_points as of_group

    return list(of_group(group=group))


@functools.lru_cache(maxsize=1)
def registered() -> dict[str, Registration]:
    """Every platform registered in ``qoectl.platforms``, by name; raises :class:`PlatformError` if one is refused."""
    found: dict[str, Registration] = {}
    problems: list[str] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.name, e.value)):
        reg, refused = _check(ep)
        problems += refused
        if reg is None:
            continue
        if reg.name in found and found[reg.name].package != reg.package:
            problems.append(f"{reg.where()}: the name is already registered by {found[reg.name].where()}")
            continue
        found[reg.name] = reg
    if problems:
        raise PlatformError("refused platform registration: " + "; ".join(problems))
    return dict(sorted(found.items()))


def names() -> list[str]:
    """The registered platform names, sorted: what the policy language accepts as ``platform``."""
    return list(registered())


def module(platform: str, part: Part) -> ModuleType | None:
    """The imported ``part`` module of ``platform`` (``None``: no such platform); checks it defines its attribute."""
    reg = registered().get(platform)
    if reg is None:
        return None
    mod = importlib.import_module(f"{reg.package}.{part}")
    if not hasattr(mod, PARTS[part]):
        raise PlatformError(f"{reg.where()}: {mod.__name__} does not define {PARTS[part]}")
    return mod


def attribute(platform: str, part: Part) -> object | None:
    """``RENDERER``, ``parse`` or ``DRIVER`` of ``platform``'s part (``None``: no such platform, or no driver)."""
    mod = module(platform, part)
    return None if mod is None else getattr(mod, PARTS[part])


def unsupported(platform: str) -> str | None:
    """Why ``platform`` has no apply driver (its ``driver`` module's ``UNSUPPORTED``), or ``None`` when it has one."""
    mod = module(platform, "driver")
    if mod is None or mod.DRIVER is not None:
        return None
    reason = getattr(mod, "UNSUPPORTED", None)
    reg = registered()[platform]
    if not isinstance(reason, str) or not reason.strip():
        raise PlatformError(f"{reg.where()}: DRIVER = None needs UNSUPPORTED = '<why qoectl does not apply it>'")
    return reason
