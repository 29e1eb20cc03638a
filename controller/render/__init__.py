"""Renderers: one per platform, found through the platform registry (:mod:`controller.registry`).

A platform's ``renderer`` module defines ``RENDERER``, an instance of
:class:`controller.render.base.Renderer`; the platform is registered in the
entry point group ``qoectl.platforms`` (qoectl's own six in its
``pyproject.toml``, others by their own distribution).
"""

from __future__ import annotations

import functools

from controller import registry
from controller.plan import DevicePlan
from controller.render.base import Renderer


@functools.cache
def get_renderer(platform: str) -> Renderer | None:
    """The renderer of a registered platform (``None``: no platform of that name); checks the contract."""
    renderer = registry.attribute(platform, "renderer")
    if renderer is None:
        return None
    reg = registry.registered()[platform]
    if not isinstance(renderer, Renderer):
        raise registry.PlatformError(f"{reg.where()}: RENDERER is not a controller.render.base.Renderer")
    if renderer.platform != platform:
        raise registry.PlatformError(f"{reg.where()}: RENDERER.platform is {renderer.platform!r}, not {platform!r}")
    if not renderer.capabilities or not renderer.outputs:
        raise registry.PlatformError(f"{reg.where()}: RENDERER declares no capabilities or no outputs")
    if not renderer.template_path().is_dir():
        raise registry.PlatformError(f"{reg.where()}: its template folder {renderer.template_path()} does not exist")
    return renderer


def render_plan(plan: DevicePlan) -> dict[str, str]:
    """The config files of one device's plan: file name -> text."""
    renderer = get_renderer(plan.platform)
    if renderer is None:
        raise registry.PlatformError(f"no platform {plan.platform!r} is registered (have: {', '.join(platforms())})")
    return renderer.render(plan)


def platforms() -> list[str]:
    """Every registered platform's name, sorted."""
    return registry.names()
