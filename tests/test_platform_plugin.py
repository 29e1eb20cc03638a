"""A platform is a plugin: a package registered in the entry point group ``qoectl.platforms``.

The slow test builds a separate virtual environment that sees qoectl and its
dependencies, pip-installs a small platform written here (``acme_os``: its own
renderer with its capabilities, template folder, parser and a driver module
that declares apply unsupported) from its own source tree, and runs
``qoectl plan`` in that environment on a policy with an ``acme_os`` device:
the plan succeeds, the rendered file reads back (through the plugin's own
parser) as the plan says, the schema generated there lists ``acme_os``, and no
file of qoectl changed. The fast tests show what the registry refuses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from controller import registry
from controller.apply import drivers
from controller.render import get_renderer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "policies"
ACME_DEVICE = "br1-rtr1"  # a cisco_iosxe device of the bundled example, made an acme_os one

PLUGIN: dict[str, str] = {
    "pyproject.toml": """
        [build-system]
        requires = ["hatchling>=1.24"]
        build-backend = "hatchling.build"

        [project]
        name = "qoectl-acme"
        version = "1.0.0"

        [project.entry-points."qoectl.platforms"]
        acme_os = "acme_qoectl"

        [tool.hatch.build.targets.wheel]
        packages = ["acme_qoectl"]
    """,
    "acme_qoectl/__init__.py": '''
        """acme_os: a qoectl platform outside qoectl."""
    ''',
    "acme_qoectl/renderer.py": """
        from pathlib import Path
        from typing import Any

        from controller.plan import DevicePlan
        from controller.render import base
        from controller.render.base import Limits, Renderer


        class AcmeRenderer(Renderer):
            platform = "acme_os"
            capabilities = frozenset(
                {base.MARKING, base.DSCP_CLASSIFY, base.QUEUING, base.STRICT_PRIORITY, base.SHAPING,
                 base.PORT_RANGES, base.IPV6, base.AQM, base.FAIR_QUEUE}
            )
            limits = Limits(max_classes=16, max_strict_classes=4)
            network_control = True
            template_folder = Path(__file__).parent / "templates" / "acme_os"
            outputs = (("acme.conf", "acme.conf.j2"),)

            def context(self, plan: DevicePlan) -> dict[str, Any]:
                return {"plan": plan, "ident": {c.name: c.ident for c in plan.classes}}


        RENDERER = AcmeRenderer()
    """,
    "acme_qoectl/templates/acme_os/acme.conf.j2": """
        # acme_os QoS for {{ plan.device }}
        {% for c in plan.classes %}
        class {{ c.ident }} {{ "strict" if c.strict else "shared" }}
        {% endfor %}
        {% for m in plan.markings %}
        mark {{ m.journey }} dscp {{ m.dscp }} class {{ ident[m.class_name] }}
        {% endfor %}
        {% for i in plan.wan_interfaces %}
        {% for a in i.allocations %}
        share {{ i.name }} {{ ident[a.class_name] }} {{ a.guaranteed_pct }}
        {% endfor %}
        {% endfor %}
    """,
    "acme_qoectl/parser.py": """
        from controller.configtext.meaning import DeviceTreatment, ParseError, journey_key, treatment


        def parse(files: dict[str, str]) -> DeviceTreatment:
            strict: dict[str, bool] = {}
            marks: dict[str, tuple[int, str]] = {}
            shares: dict[str, dict[str, float]] = {}
            for line in files["acme.conf"].splitlines():
                words = line.split()
                if not words or words[0].startswith("#"):
                    continue
                if words[0] == "class":
                    strict[words[1]] = words[2] == "strict"
                elif words[0] == "mark":
                    marks[words[1]] = (int(words[3]), words[5])
                elif words[0] == "share":
                    shares.setdefault(words[2], {})[words[1]] = float(words[3])
                else:
                    raise ParseError(f"not acme_os: {line!r}")
            out: DeviceTreatment = {}
            for journey, (dscp, cls) in marks.items():
                if cls not in strict:
                    raise ParseError(f"{journey} is marked into class {cls}, which is not defined")
                per_link = {link: (strict[cls], share) for link, share in shares.get(cls, {}).items()}
                out[journey_key(journey)] = treatment(journey, dscp, per_link)
            return out
    """,
    "acme_qoectl/driver.py": """
        DRIVER = None
        UNSUPPORTED = "acme_os devices take acme.conf from their own controller; qoectl plans it only"
    """,
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def qoectl_files() -> dict[str, tuple[int, int]]:
    """Every file of qoectl's package and templates: (size, mtime) - what installing a plugin must not touch."""
    out = {}
    for top in ("controller", "templates"):
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                stat = path.stat()
                out[str(path.relative_to(ROOT))] = (stat.st_size, stat.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment that sees qoectl (and its dependencies) and has qoectl-acme installed by pip."""
    tmp = tmp_path_factory.mktemp("plugin")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    ours = sysconfig.get_paths()["purelib"]
    (site / "qoectl-dev.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    source = tmp / "qoectl-acme"
    write_tree(source, PLUGIN)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet"]
    done = subprocess.run(
        [*pip, "--no-deps", "--no-build-isolation", "--no-index", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return venv


def in_venv(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(venv / "bin" / "python"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def acme_policy(tmp: Path) -> Path:
    policy = tmp / "policy"
    shutil.copytree(EXAMPLE, policy)
    inventory = policy / "inventory" / "devices.yaml"
    lines = inventory.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.strip() == f"- name: {ACME_DEVICE}")
    platform = next(i for i in range(at, len(lines)) if lines[i].strip().startswith("platform:"))
    assert lines[platform].strip() == "platform: cisco_iosxe", lines[platform]
    lines[platform] = lines[platform].replace("cisco_iosxe", "acme_os")
    inventory.write_text("".join(lines))
    return policy


@pytest.mark.slow
def test_an_out_of_tree_platform_plans_with_no_file_of_qoectl_changed(plugin_venv: Path, tmp_path: Path) -> None:
    before = qoectl_files()
    policy = acme_policy(tmp_path)
    out = tmp_path / "out"

    plan = in_venv(plugin_venv, "-m", "controller.cli.main", "plan", str(policy), "--out", str(out), cwd=tmp_path)
    assert plan.returncode in (0, 2), plan.stdout + plan.stderr
    rendered = out / ACME_DEVICE / "acme.conf"
    assert rendered.is_file(), sorted(p.name for p in (out / ACME_DEVICE).iterdir())

    # What the file means, read back by the plugin's own parser, is what the plan says (in the plugin's venv).
    check = in_venv(
        plugin_venv,
        "-c",
        textwrap.dedent(
            f"""
            import json, sys
            from controller.pipeline import build
            from controller.registry import module
            b = build({str(policy)!r})
            plan = b.plan({ACME_DEVICE!r})
            read = module("acme_os", "parser").parse({{"acme.conf": open({str(rendered)!r}).read()}})
            strict = {{c.name: c.strict for c in plan.classes}}
            want = {{m.journey.upper().replace(".", "_"): [m.dscp, strict[m.class_name]] for m in plan.markings}}
            got = {{k: [t.dscp, t.strict] for k, t in read.items()}}
            json.dump({{"platform": plan.platform, "want": want, "got": got}}, sys.stdout)
            """
        ),
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr
    meaning = json.loads(check.stdout)
    assert meaning["platform"] == "acme_os"
    assert meaning["want"] and meaning["got"] == meaning["want"]

    schema = in_venv(plugin_venv, "-m", "controller.cli.main", "schema", cwd=tmp_path)
    assert schema.returncode == 0, schema.stderr
    assert '"acme_os"' in schema.stdout

    # An unknown name is refused at its line, and the message lists the plugin's platform with the built-in ones.
    inventory = policy / "inventory" / "devices.yaml"
    inventory.write_text(inventory.read_text().replace("platform: acme_os", "platform: acme_oss"))
    wrong = in_venv(plugin_venv, "-m", "controller.cli.main", "validate", str(policy), cwd=tmp_path)
    assert wrong.returncode == 1
    line = next(i + 1 for i, t in enumerate(inventory.read_text().splitlines()) if "acme_oss" in t)
    assert f"devices.yaml:{line}:" in wrong.stdout + wrong.stderr
    assert "registered platforms are acme_os, arista_eos" in wrong.stdout + wrong.stderr

    # apply refuses the device before any connection, with the reason the plugin gives.
    driver = in_venv(
        plugin_venv,
        "-c",
        "from controller.apply.drivers import driver_for, unsupported\n"
        "print(driver_for('acme_os'), unsupported('acme_os'))",
        cwd=tmp_path,
    )
    assert driver.stdout.startswith("None acme_os devices take acme.conf"), driver.stdout + driver.stderr

    assert qoectl_files() == before, "installing and using a platform changed qoectl's own files"
    # The main environment does not know acme_os: the plugin lives only where it was installed.
    assert "acme_os" not in registry.names()


# --------------------------------------------------------------------------- what registration refuses


def registered_with(monkeypatch: pytest.MonkeyPatch, extra: list[EntryPoint]) -> None:
    real = registry.entry_points(group=registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [*real, *extra])
    registry.registered.cache_clear()
    get_renderer.cache_clear()
    drivers.driver_for.cache_clear()


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    registry.registered.cache_clear()
    get_renderer.cache_clear()
    drivers.driver_for.cache_clear()
    for name in [m for m in sys.modules if m.startswith(("acme_qoectl", "half_platform"))]:
        del sys.modules[name]


def test_a_platform_missing_a_part_is_refused(plugin_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(plugin_path, {k: v for k, v in PLUGIN.items() if k.startswith("acme_qoectl/") and "parser" not in k})
    registered_with(monkeypatch, [EntryPoint("acme_os", "acme_qoectl", registry.GROUP)])
    with pytest.raises(registry.PlatformError) as refused:
        registry.names()
    assert "platform 'acme_os' (acme_qoectl" in str(refused.value)
    assert "missing acme_qoectl.parser (defining parse)" in str(refused.value)


def test_a_name_taken_or_not_an_identifier_is_refused(plugin_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(plugin_path, {k: v for k, v in PLUGIN.items() if k.startswith("acme_qoectl/")})
    registered_with(
        monkeypatch,
        [EntryPoint("linux", "acme_qoectl", registry.GROUP), EntryPoint("Acme-OS", "acme_qoectl", registry.GROUP)],
    )
    with pytest.raises(registry.PlatformError) as refused:
        registry.names()
    assert "platform 'linux' (acme_qoectl" in str(refused.value) and "already registered" in str(refused.value)
    assert "platform 'Acme-OS'" in str(refused.value) and "lower-case letters" in str(refused.value)


def test_a_renderer_for_another_name_is_refused(plugin_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(plugin_path, {k: v for k, v in PLUGIN.items() if k.startswith("acme_qoectl/")})
    registered_with(monkeypatch, [EntryPoint("acme_two", "acme_qoectl", registry.GROUP)])
    assert "acme_two" in registry.names()
    with pytest.raises(registry.PlatformError, match=r"RENDERER\.platform is 'acme_os', not 'acme_two'"):
        get_renderer("acme_two")
    assert drivers.driver_for("acme_two") is None
    assert (drivers.unsupported("acme_two") or "").startswith("acme_os devices take")
