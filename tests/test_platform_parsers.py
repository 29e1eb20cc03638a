"""One parser per config language, owned by the platform (issue 15 item 3).

* Every registered platform has a parser whose ``parse`` reads the platform's rendered text, and the parser
  imports neither the platform's renderer or driver nor the plan, model, compile or apply: it reads only the
  text (checked here with ``ast`` for every registered platform, out-of-tree ones too; ``make lint`` checks the
  built-in ones with import-linter).
* Apply reads config text with the same syntax layer the parser reads meaning from, so the two cannot disagree
  about what a line is.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from controller import linux_routing as owned
from controller import registry
from controller.apply.drivers import _ioslike
from controller.configtext import cli_tree
from controller.configtext.meaning import parser_of
from controller.pipeline import Build, render_plan
from controller.platforms.fortios_sdwan import driver as fortios_driver
from controller.platforms.fortios_sdwan import parser as fortios_parser
from controller.platforms.juniper_junos import driver as junos_driver
from controller.platforms.juniper_junos import parser as junos_parser
from controller.platforms.linux import parser as linux_parser
from controller.platforms.linux import routing

# What a parser must not import (module name prefixes); the platform's own renderer and driver are added per platform.
FORBIDDEN = (
    "controller.render",
    "controller.plan",
    "controller.compile",
    "controller.model",
    "controller.spec",
    "controller.load",
    "controller.capabilities",
    "controller.pipeline",
    "controller.apply",
    "jinja2",
)
# Modules a parser may import whose own imports are followed too (the shared syntax and meaning).
FOLLOWED = ("controller.configtext.meaning", "controller.configtext.cli_tree")


def _imports(source: str, module: str) -> set[str]:
    """Every module an import statement of ``source`` names (``from x import y`` counts as x and x.y)."""
    found: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in prefixes)


def forbidden_imports(module: str, forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden modules ``module`` imports, itself or through the platform package / shared modules it uses."""
    package = module.rsplit(".", 1)[0]
    seen: set[str] = set()
    todo = [module]
    bad: list[str] = []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        names = _imports(Path(spec.origin).read_text(), name)
        for imported in sorted(names):
            parent = imported.rsplit(".", 1)[0]
            if imported == name:
                continue
            if _matches(imported, forbidden):
                if parent not in names or not _matches(parent, forbidden):  # "from x import y": x, not x.y again
                    bad.append(f"{name} imports {imported}")
            elif imported.startswith(package + ".") or imported in FOLLOWED:
                todo.append(imported)
    return bad


@pytest.mark.parametrize("platform", registry.names())
def test_every_registered_platform_has_a_parser_that_reads_only_text(platform: str) -> None:
    module = parser_of(platform)
    package = registry.registered()[platform].package
    assert callable(module.parse)
    assert forbidden_imports(module.__name__, (*FORBIDDEN, f"{package}.renderer", f"{package}.driver")) == []


def test_the_import_check_finds_a_parser_that_reads_the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "acme_platform"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("from controller.plan import DevicePlan\n")
    (pkg / "parser.py").write_text("from . import helpers\nfrom .renderer import RENDERER\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bad = forbidden_imports("acme_platform.parser", (*FORBIDDEN, "acme_platform.renderer"))
    assert sorted(bad) == [
        "acme_platform.helpers imports controller.plan",
        "acme_platform.parser imports acme_platform.renderer",
    ]


def test_every_example_device_reads_back(example_build: Build) -> None:
    """Each platform's parser reads every journey of every bundled example device back from its rendered text."""
    for plan in example_build.plans:
        read = parser_of(plan.platform).parse(render_plan(plan))
        assert {m.journey.upper().replace(".", "_") for m in plan.markings} == set(read), plan.device


def test_apply_reads_config_text_with_the_parsers_syntax() -> None:
    """One reader per language: the drivers use the parsers' syntax functions, not copies of them."""
    assert _ioslike.parse is cli_tree.parse and _ioslike.Node is cli_tree.Node
    assert fortios_driver.parse is fortios_parser.tree and fortios_driver.Block is fortios_parser.Block
    assert junos_driver.set_lines is junos_parser.set_lines
    assert routing.routing_lines is linux_parser.routing_lines


def test_a_routing_file_outside_what_qoectl_owns_is_named() -> None:
    from tests.test_cross_platform import _retargeted  # every device a Linux edge with a gateway per WAN link

    rendered = [files for p in _retargeted("linux").plans if "routing.batch" in (files := render_plan(p))]
    assert rendered, "no Linux edge with a routing file to check"
    assert all(routing.outside(files["routing.batch"]) is None for files in rendered)
    table, rule = owned.TABLE_FIRST, owned.RULE_FIRST
    good = f"route add default via 192.0.2.1 dev wan0 table {table}\n"
    good += f"rule add priority {rule} fwmark 0x100/0xff00 lookup {table}\n"
    assert routing.outside(good) is None
    for line in (
        f"route add default via 192.0.2.1 dev wan0 table {owned.TABLE_LAST + 1}",  # a table qoectl does not own
        f"rule add priority {owned.RULE_LAST + 1} fwmark 0x100/0xff00 lookup {table}",  # a priority outside its range
        f"rule add priority {rule} fwmark 0x1/0xff lookup {table}",  # mark bits qoectl does not own
        "link set dev wan0 down",  # not a route or a rule at all
    ):
        assert routing.outside(good + line + "\n") == line
