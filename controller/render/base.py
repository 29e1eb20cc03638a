"""The small renderer interface every platform implements.

A renderer declares its platform name, the capabilities it can express, its
limits and its template folder; it turns one :class:`DevicePlan` into named
config files. The compiler checks each plan against these declarations and
reports everything unsupported at once, before anything is rendered.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

# The declarations are the contract's (controller.capabilities); renderers keep importing them from here.
from controller.capabilities import (
    AQM,
    CAPABILITY_TEXT,
    DSCP_CLASSIFY,
    FAIR_QUEUE,
    IPV6,
    MARKING,
    PORT_RANGES,
    QUEUING,
    SDWAN_PATH,
    SDWAN_SLA,
    SERVICE_VPN,
    SHAPING,
    STRICT_PRIORITY,
    Capabilities,
    Limits,
)
from controller.plan import DevicePlan

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "AQM",
    "CAPABILITY_TEXT",
    "DSCP_CLASSIFY",
    "FAIR_QUEUE",
    "IPV6",
    "MARKING",
    "PORT_RANGES",
    "QUEUING",
    "SDWAN_PATH",
    "SDWAN_SLA",
    "SERVICE_VPN",
    "SHAPING",
    "STRICT_PRIORITY",
    "Capabilities",
    "Limits",
    "Renderer",
    "environment",
    "if_ident",
    "lines_mentioning",
    "network",
    "percent_split",
    "templates_root",
    "whole_percents",
]


def templates_root() -> Path:
    """``templates/`` in a source checkout, or the copy packaged inside ``controller``."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "templates"
    if packaged.is_dir():
        return packaged
    return here.parent / "templates"


def _kbps(value: float) -> str:
    return f"{int(value)}kbit"


@functools.cache
def _environment_class() -> type[jinja2.Environment]:
    """Jinja's environment with a faster ``x.key`` on plain dicts (the contexts are dicts).

    Jinja tries ``getattr(obj, key)`` first and only then ``obj[key]``; on a dict
    every ``{{ row.name }}`` therefore raised and caught an AttributeError, which
    was about half of all rendering time. A plain ``dict`` has no attributes but
    those of its type, so looking the key up first whenever ``key`` is not such
    an attribute gives exactly the same result (``d.items`` is still the method).
    Jinja is imported on the first render, not with this module: commands that
    only compile (``verify``, ``validate``) never load it.
    """
    import jinja2

    class _Environment(jinja2.Environment):
        def getattr(self, obj: Any, attribute: str) -> Any:
            if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
                try:
                    return obj[attribute]
                except KeyError:
                    pass
            return super().getattr(obj, attribute)

    return _Environment


_DICT_ATTRIBUTES = frozenset(dir(dict))


@functools.lru_cache(maxsize=4096)
def network(prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``ipaddress.ip_network(prefix)``, memoised.

    Every device's config repeats the same few journey prefixes, and parsing them
    again for each device was the largest cost of building render contexts.
    Network objects are immutable, so sharing them is safe.
    """
    return ipaddress.ip_network(prefix)


@functools.lru_cache(maxsize=16)
def environment(root: str | None = None) -> jinja2.Environment:
    """The Jinja environment over ``root`` (default: qoectl's ``templates/``); one per template root."""
    import jinja2

    env = _environment_class()(
        loader=jinja2.FileSystemLoader(root or str(templates_root())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # device configs, not HTML; inputs are restricted at load (S701)
        auto_reload=False,
    )
    env.filters["kbit"] = _kbps
    return env


class Renderer(Capabilities, ABC):
    """A platform's renderer: its declarations (:class:`controller.capabilities.Capabilities`) and its templates."""

    # The platform's template folder: None for qoectl's own ``templates/<template_dir>/``; an out-of-tree
    # platform sets it to the folder it ships (``Path(__file__).parent / "templates"``). Templates may include
    # each other as ``<folder name>/<file>``.
    template_folder: ClassVar[Path | None] = None

    @property
    def template_dir(self) -> str:
        return self.platform if self.template_folder is None else self.template_folder.name

    def template_path(self) -> Path:
        """The folder this platform's templates are read from."""
        return templates_root() / self.template_dir if self.template_folder is None else self.template_folder

    def template(self, name: str) -> jinja2.Template:
        root = None if self.template_folder is None else str(self.template_folder.parent)
        return environment(root).get_template(f"{self.template_dir}/{name}")

    # Output files: (file name, template name inside the platform's template folder).
    outputs: ClassVar[tuple[tuple[str, str], ...]]

    @abstractmethod
    def context(self, plan: DevicePlan) -> dict[str, Any]:
        """What the templates see: the plan plus platform-specific derived names/values."""

    def render(self, plan: DevicePlan) -> dict[str, str]:
        """Config files for one device: file name -> text."""
        return self.render_context(self.context(plan))

    def render_context(self, ctx: dict[str, Any]) -> dict[str, str]:
        """Render from a precomputed context (also the benchmark's floor)."""
        return {name: self.template(tpl).render(ctx) for name, tpl in self.outputs}

    def explain_tokens(self, plan: DevicePlan, journey: str) -> list[str]:
        """Words that identify a journey's config lines (its marking and its class)."""
        tokens = [journey]
        for rule in plan.markings:
            if rule.journey == journey:
                tokens += [rule.ident, rule.class_name]
                tokens += [c.ident for c in plan.classes if c.name == rule.class_name]
        return tokens

    def journey_lines(self, files: dict[str, str], plan: DevicePlan, journey: str) -> dict[str, list[str]]:
        tokens = self.explain_tokens(plan, journey)
        found = {name: lines_mentioning(text, tokens) for name, text in files.items()}
        return {name: lines for name, lines in found.items() if lines}


def percent_split(values: list[float]) -> list[int]:
    """Whole percentages proportional to ``values`` that sum to exactly 100, each at least 1.

    Shares below 1 % are raised to exactly 1 % and the others share what is
    left; then the largest-remainder method rounds them, so the result is
    deterministic and as close to the exact shares as whole numbers allow.
    """
    n = len(values)
    if n == 0:
        return []
    if n > 100:
        raise ValueError("cannot give more than 100 shares at least 1 % each")
    total = sum(values) or 1.0
    exact = [max(v, 0.0) / total * 100.0 for v in values]
    floored: set[int] = set()
    while True:
        free = [i for i in range(n) if i not in floored]
        free_total = sum(exact[i] for i in free)
        budget = 100.0 - len(floored)
        scaled = {i: (exact[i] / free_total * budget if free_total else budget / len(free)) for i in free}
        small = {i for i, v in scaled.items() if v < 1.0}
        if not small:
            break
        floored |= small
    out = [1 if i in floored else int(scaled[i]) for i in range(n)]
    order = sorted(free, key=lambda i: (-(scaled[i] - out[i]), i))
    for k in range(100 - sum(out)):
        out[order[k % len(order)]] += 1
    return out


def whole_percents(exact: Mapping[str, float], default: str, up: frozenset[str] = frozenset()) -> dict[str, int]:
    """Whole percentages for shares given exactly (summing to 100): the default class takes the rest.

    Every other class is rounded to the nearest whole percent (``up``: rounded
    up), at least 1 %; the default class gets what is left, which is exactly
    what the plan gives it (the remainder of the link). The granularity check in
    :mod:`controller.compile.capabilities` rejects plans that would leave it
    nothing, so an error here means that check was bypassed.
    """
    out = {
        name: max(1, math.ceil(v - 1e-9) if name in up else math.floor(v + 0.5))
        for name, v in exact.items()
        if name != default
    }
    rest = 100 - sum(out.values())
    if rest < 1:
        raise ValueError(f"whole-percent shares leave {rest} % for the default class: {out}")
    out[default] = rest
    return out


def if_ident(name: str) -> str:
    """An interface name as a config identifier: ``GigabitEthernet0/0/1`` -> ``GIGABITETHERNET0-0-1``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").upper()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def lines_mentioning(text: str, tokens: list[str]) -> list[str]:
    """Lines that mention any token (as a whole word), each with the block indented under it."""
    if not tokens:
        return []
    pattern = re.compile("|".join(rf"(?<![A-Za-z0-9_-]){re.escape(t)}(?![A-Za-z0-9_-])" for t in sorted(set(tokens))))
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if pattern.search(line):
            out.append(line)
            depth = _indent(line)
            j = i + 1
            while j < len(lines) and lines[j].strip() and _indent(lines[j]) > depth and line.lstrip()[:1] != "#":
                if lines[j].lstrip().startswith(("class ", "table ", "chain ")):
                    break
                out.append(lines[j])
                j += 1
            i = j
            continue
        i += 1
    return out
