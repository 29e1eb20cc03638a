"""Apply drivers: each platform's ``driver`` module defines ``DRIVER``, found through :mod:`controller.registry`.

A platform registered in ``qoectl.platforms`` brings its driver (a subclass of
:class:`controller.apply.drivers.base.Driver`), or says why qoectl does not
apply to it (``DRIVER = None``, ``UNSUPPORTED = "..."``). The modules here are
apply's own: the shared driver families (``_ioslike``, ``_confd``) and the
Cisco SD-WAN controller's driver, which is no inventory platform.
"""

from __future__ import annotations

import functools

from controller import registry
from controller.apply.drivers.base import Driver, DriverContext, Snapshot

__all__ = ["Driver", "DriverContext", "Snapshot", "driver_for", "drivers", "unsupported"]

SDWAN_CONTROLLER = "cisco_sdwan_controller"


@functools.cache
def driver_for(platform: str) -> type[Driver] | None:
    """The driver class of ``platform`` (``None``: no such platform, or it declares apply unsupported)."""
    if platform == SDWAN_CONTROLLER:
        from controller.apply.drivers.cisco_sdwan_controller import DRIVER

        return DRIVER
    cls = registry.attribute(platform, "driver")
    if cls is None:
        registry.unsupported(platform)  # a DRIVER = None without its reason is refused
        return None
    if not (isinstance(cls, type) and issubclass(cls, Driver)) or cls.platform != platform:
        where = registry.registered()[platform].where()
        raise registry.PlatformError(f"{where}: DRIVER must be a Driver subclass whose platform is {platform!r}")
    return cls


def unsupported(platform: str) -> str | None:
    """Why qoectl does not apply to ``platform``, as its package says (``None``: it has a driver or is unknown)."""
    return registry.unsupported(platform) if platform in registry.registered() else None


def drivers() -> dict[str, type[Driver]]:
    """Every registered platform's driver, by platform (those that declare apply unsupported left out)."""
    found = {name: driver_for(name) for name in registry.names()}
    return {name: cls for name, cls in found.items() if cls is not None}
