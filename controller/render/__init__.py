"""Renderers: one module and one template folder per platform.

Every module in this package that defines ``RENDERER`` (an instance of
:class:`controller.render.base.Renderer`) is a platform; adding a platform is
adding a module and a ``templates/<platform>/`` folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from controller.render.base import Renderer

_NOT_PLATFORMS = {"base", "outputs"}


@lru_cache(maxsize=1)
def _registry() -> dict[str, Renderer]:
    found: dict[str, Renderer] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_PLATFORMS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        renderer = getattr(module, "RENDERER", None)
        if isinstance(renderer, Renderer):
            found[renderer.platform] = renderer
    return found


def get_renderer(platform: str) -> Renderer | None:
    return _registry().get(platform)


def platforms() -> list[str]:
    return sorted(_registry())
