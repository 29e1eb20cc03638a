"""Apply drivers, one module per platform, found by their ``DRIVER`` attribute.

Adding a platform means adding a module here that defines ``DRIVER = SomeDriver``;
nothing else in qoectl has to change.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from controller.apply.drivers.base import Driver, DriverContext, Snapshot

__all__ = ["Driver", "DriverContext", "Snapshot", "driver_for", "drivers"]


@functools.lru_cache(maxsize=1)
def drivers() -> dict[str, type[Driver]]:
    found: dict[str, type[Driver]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        cls = getattr(module, "DRIVER", None)
        if isinstance(cls, type) and issubclass(cls, Driver):
            found[cls.platform] = cls
    return found


def driver_for(platform: str) -> type[Driver] | None:
    return drivers().get(platform)
