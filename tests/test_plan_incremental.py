"""The incremental plan (``qoectl plan --cache``): after an edit, only the devices whose inputs changed are
compiled again, and everything the plan says and writes is what a full plan says and writes.

Each check runs the real CLI twice from the same starting tree: once with the cache the previous plan
left (incremental), once from a copy of that tree whose cache index was removed (a full plan, which is
counted: every device compiled). Device files, manifest, table, JSON, stderr and exit code must be equal.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import fleet
from controller import pipeline
from controller.cli.main import cli
from controller.render import incremental, tree

DEVICES = 40
JOURNEYS = 10


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fleet.generate(tmp_path_factory.mktemp("fleet") / "policies", devices=DEVICES, journeys=JOURNEYS).root


@pytest.fixture(autouse=True)
def pinned_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    """qoectl's own code is edited while these tests run (a shared working tree): its salt is pinned here,
    and :func:`test_the_salt_follows_code_and_templates` checks what it is made of."""
    monkeypatch.setattr(incremental, "code_salt", lambda: "pinned")


def test_the_salt_follows_code_and_templates(tmp_path: Path) -> None:
    def digest() -> str:
        h = hashlib.sha256()
        incremental._tree_digest(h, tmp_path)
        return h.hexdigest()

    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "qos.cfg.j2").write_text("{{ a }}\n")
    (tmp_path / "__pycache__").mkdir()
    first = digest()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"compiled")
    assert digest() == first  # byte code is not source
    (tmp_path / "templates" / "qos.cfg.j2").write_text("{{ b }}\n")
    os.utime(tmp_path / "templates" / "qos.cfg.j2", ns=(1, 1))
    assert digest() != first


@contextmanager
def counting() -> Iterator[list[str]]:
    """The names of the devices compiled while inside (plans run with --jobs 1, so in this process)."""
    seen: list[str] = []
    original = pipeline.compile_one

    def spy(v: pipeline.Validated, device: Any) -> Any:
        seen.append(device.name)
        return original(v, device)

    pipeline.compile_one = spy
    try:
        yield seen
    finally:
        pipeline.compile_one = original


def plan(policies: Path, out: Path, *extra: str) -> tuple[Result, list[str]]:
    with counting() as compiled:
        result = CliRunner().invoke(cli, ["plan", str(policies), "--out", str(out), "--jobs", "1", "--cache", *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result, sorted(compiled)


def files(root: Path) -> dict[str, bytes]:
    """Every file of an output folder but the cache."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and tree.CACHE_DIR not in p.relative_to(root).parts
    }


def full_copy(out: Path, dest: Path) -> Path:
    """``out`` as it is, without its cache index: a plan into it is a full one."""
    shutil.copytree(out, dest)
    (dest / tree.CACHE_DIR / incremental.INDEX).unlink(missing_ok=True)
    return dest


def same_as_full(policies: Path, out: Path, work: Path, *extra: str) -> list[str]:
    """Plan ``policies`` into ``out`` incrementally and, from the same tree, fully; assert they agree.

    Returns the devices the incremental plan compiled.
    """
    reference = full_copy(out, work / f"full-{len(list(work.iterdir()))}")
    inc, compiled = plan(policies, out, *extra)
    full, all_compiled = plan(policies, reference, *extra)
    assert inc.exit_code == full.exit_code, (inc.output, full.output)
    if full.exit_code != 1:
        assert len(all_compiled) == len(set(all_compiled))
        assert files(out) == files(reference)
    assert inc.stdout.replace(str(out), "OUT") == full.stdout.replace(str(reference), "OUT")
    assert inc.stderr.replace(str(out), "OUT") == full.stderr.replace(str(reference), "OUT")
    return compiled


# --------------------------------------------------------------------------- edits


def _docs(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(path.read_text()))


def _write(path: Path, docs: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _journey_files(root: Path) -> list[Path]:
    return sorted((root / "journeys").glob("*.yaml"))


def _devices_file(root: Path) -> Path:
    return sorted((root / "inventory").glob("devices-*.yaml"))[0]


def edit_journey(root: Path, pick: int, value: int) -> None:
    path = _journey_files(root)[pick % len(_journey_files(root))]
    docs = _docs(path)
    spec = docs[value % len(docs)]["spec"]
    bandwidth = spec["bandwidth"]
    if "share_pct" in bandwidth:
        bandwidth["share_pct"] = 1 + value % 4
    else:
        bandwidth["concurrent_flows"] = 5 + value % 30
    if value % 3 == 0:
        spec["priority"] = (
            ("critical", "high", "normal", "low")[value % 4] if "voice" not in spec["target"] else "critical"
        )
    _write(path, docs)


def edit_scope(root: Path, pick: int, value: int) -> None:
    path = _journey_files(root)[pick % len(_journey_files(root))]
    docs = _docs(path)
    spec = docs[value % len(docs)]["spec"]
    scope = dict(spec.get("scope", {}))
    tags = scope.get("device_tags")
    sites = [s["name"] for s in _docs(root / "inventory" / "sites.yaml")[0]["spec"]["sites"]]
    new: dict[str, Any] = {
        0: {},
        1: {"contexts": ["branch"]},
        2: {"sites": sites[value % len(sites) :][:2]},
        3: {"contexts": ["campus", "datacenter"]},
    }[value % 4]
    if tags and any(t.startswith("qos-") for t in tags):
        new["device_tags"] = tags  # platforms that cannot express it stay scoped away
    spec["scope"] = new
    _write(path, docs)


def edit_device(root: Path, pick: int, value: int) -> None:
    path = _devices_file(root)
    docs = _docs(path)
    devices = docs[0]["spec"]["devices"]
    device = devices[pick % len(devices)]
    wan = [i for i in device["interfaces"] if i["role"] == "wan"]
    if wan and value % 2:
        wan[0]["bandwidth_kbps"] = 10_000 + 1_000 * (value % 50)
    else:
        device["host"] = f"198.18.200.{value % 250 + 1}"
    _write(path, docs)


def edit_site(root: Path, pick: int, value: int) -> None:
    path = root / "inventory" / "sites.yaml"
    docs = _docs(path)
    site = docs[0]["spec"]["sites"][pick % len(docs[0]["spec"]["sites"])]
    if value % 2:
        site["sdwan_site_id"] = 5000 + value  # Cisco SD-WAN edges there apply their site's policy
    else:
        site["context"] = ("branch", "campus", "datacenter")[value % 3]
    _write(path, docs)


def edit_transport(root: Path, pick: int, value: int) -> None:
    path = root / "inventory" / "sites.yaml"
    docs = _docs(path)
    transport = docs[0]["spec"]["transports"][pick % len(docs[0]["spec"]["transports"])]
    transport["base_delay_ms"] = 5 + value % 80
    _write(path, docs)


def edit_settings(root: Path, pick: int, value: int) -> None:
    docs = _docs(root / "qoectl.yaml")
    docs[0]["spec"]["priority_cap_pct"] = 25 + value % 20
    _write(root / "qoectl.yaml", docs)


def edit_adjustments(root: Path, pick: int, value: int) -> None:
    """An Adjustments document: a shaper on one device's first WAN interface (or none: the file removed)."""
    path = root / "adjustments.yaml"
    if value % 3 == 0:
        path.unlink(missing_ok=True)
        return
    devices = _docs(_devices_file(root))[0]["spec"]["devices"]
    device = devices[pick % len(devices)]
    wan = next(i for i in device["interfaces"] if i["role"] == "wan")
    entry = {
        "shaper": {"device": device["name"], "interface": wan["name"], "kbps": 5_000 + 100 * (value % 40)},
        "reason": "test",
        "measurements": {},
        "time": "2025-05-01T10:00:00Z",
    }
    doc = {"apiVersion": "qoectl/v1", "kind": "Adjustments", "metadata": {"name": "ops"}, "spec": {"entries": [entry]}}
    _write(path, [doc])


def add_or_remove_device(root: Path, pick: int, value: int) -> None:
    path = _devices_file(root)
    docs = _docs(path)
    devices = docs[0]["spec"]["devices"]
    if value % 2 and len(devices) > 2:
        devices.pop(pick % len(devices))
    else:
        copy = json.loads(json.dumps(devices[pick % len(devices)]))
        copy["name"] = f"{copy['name']}-x{value}"
        if all(d["name"] != copy["name"] for d in devices):
            devices.append(copy)
    _write(path, docs)


def add_or_remove_journey_file(root: Path, pick: int, value: int) -> None:
    extra = root / "journeys" / "extra.yaml"
    if extra.exists() and value % 2:
        extra.unlink()
        return
    source = _docs(_journey_files(root)[pick % len(_journey_files(root))])
    doc = json.loads(json.dumps(source[0]))
    doc["metadata"]["name"] = f"extra-{value % 5}"
    _write(extra, [doc])


EDITS: list[Callable[[Path, int, int], None]] = [
    edit_journey,
    edit_scope,
    edit_device,
    edit_site,
    edit_transport,
    edit_settings,
    edit_adjustments,
    add_or_remove_device,
    add_or_remove_journey_file,
]

edits = st.lists(
    st.tuples(st.sampled_from(EDITS), st.integers(0, 10_000), st.integers(0, 10_000), st.booleans()),
    min_size=1,
    max_size=3,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=edits)
def test_random_edits_give_what_a_full_plan_gives(base: Path, steps: list[tuple[Any, int, int, bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        policies = work / "policies"
        shutil.copytree(base, policies)
        out = work / "out"
        first, compiled = plan(policies, out, "--no-diff")
        assert first.exit_code == 2 and len(compiled) == DEVICES
        for edit, pick, value, as_json in steps:
            edit(policies, pick, value)
            same_as_full(policies, out, work, *(["--json"] if as_json else []))


def _reached(root: Path, scope: dict[str, Any]) -> list[str]:
    """The devices a scope reaches, worked out from the YAML (sites, tags; no contexts in these scopes)."""
    devices = [d for f in sorted((root / "inventory").glob("devices-*.yaml")) for d in _docs(f)[0]["spec"]["devices"]]
    return sorted(
        d["name"]
        for d in devices
        if (not scope.get("sites") or d["site"] in scope["sites"])
        and (not scope.get("device_tags") or set(d["tags"]) & set(scope["device_tags"]))
    )


def test_a_one_journey_edit_compiles_only_the_devices_it_reaches(base: Path, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(base, policies)
    # A journey of our own, on two sites (and on the platforms its source journey is on).
    sites = [s["name"] for s in _docs(policies / "inventory" / "sites.yaml")[0]["spec"]["sites"]][3:5]
    source = _docs(_journey_files(policies)[0])[0]
    journey = json.loads(json.dumps(source))
    journey["metadata"]["name"] = "narrow"
    journey["spec"]["scope"] = {
        "sites": sites,
        **{k: v for k, v in source["spec"].get("scope", {}).items() if k == "device_tags"},
    }
    _write(policies / "journeys" / "narrow.yaml", [journey])
    reached = _reached(policies, journey["spec"]["scope"])
    assert 0 < len(reached) < DEVICES / 4, reached

    out = tmp_path / "out"
    first, compiled = plan(policies, out)
    assert first.exit_code == 2 and len(compiled) == DEVICES
    again, compiled = plan(policies, out)
    assert again.exit_code == 0 and compiled == []  # nothing changed: nothing compiled

    bandwidth = journey["spec"]["bandwidth"]
    bandwidth.update({"share_pct": 7} if "share_pct" in bandwidth else {"concurrent_flows": 33})
    _write(policies / "journeys" / "narrow.yaml", [journey])
    assert same_as_full(policies, out, tmp_path) == reached

    # A journey's file moved by an edit before it (its origin changes, its YAML values do not): nothing to do.
    path = policies / "journeys" / "narrow.yaml"
    path.write_text("# a comment\n" + path.read_text())
    assert same_as_full(policies, out, tmp_path) == []
    # one parsed file kept per policy file: those of earlier texts are gone
    assert len(list((out / tree.CACHE_DIR / incremental.YAML).glob("*.json"))) == len(list(policies.rglob("*.yaml")))


def test_a_shared_setting_compiles_every_device(base: Path, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(base, policies)
    out = tmp_path / "out"
    plan(policies, out)
    edit_settings(policies, 0, 7)
    assert len(same_as_full(policies, out, tmp_path)) == DEVICES
    edit_transport(policies, 1, 3)
    assert len(same_as_full(policies, out, tmp_path)) == DEVICES


def test_a_site_edit_compiles_the_devices_of_that_site(base: Path, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(base, policies)
    out = tmp_path / "out"
    plan(policies, out)
    docs = _docs(policies / "inventory" / "sites.yaml")
    site = docs[0]["spec"]["sites"][2]
    there = _reached(policies, {"sites": [site["name"]]})
    site["sdwan_site_id"] += 1000  # changes no journey's reach: only the site's own devices see it
    _write(policies / "inventory" / "sites.yaml", docs)
    assert same_as_full(policies, out, tmp_path) == there
    site["context"] = "campus" if site["context"] != "campus" else "branch"
    _write(policies / "inventory" / "sites.yaml", docs)
    assert same_as_full(policies, out, tmp_path) == there


def test_errors_in_files_parsed_before_point_where_a_full_plan_points(base: Path, tmp_path: Path) -> None:
    """Positions are not cached: a diagnostic in an unchanged file is located by parsing it again."""
    policies = tmp_path / "policies"
    shutil.copytree(base, policies)
    out = tmp_path / "out"
    plan(policies, out)
    docs = _docs(_devices_file(policies))
    wan = next(i for i in docs[0]["spec"]["devices"][4]["interfaces"] if i["role"] == "wan")
    wan["bandwidth_kbps"] = 10  # far too little for its journeys: errors at the journeys (unchanged files)
    _write(_devices_file(policies), docs)
    same_as_full(policies, out, tmp_path)
    again = plan(policies, out)[0]
    assert again.exit_code == 1 and ".yaml:" in again.stderr
    cached = len(list((out / tree.CACHE_DIR / incremental.YAML).glob("*.json")))
    assert cached == len(list(policies.rglob("*.yaml")))  # the failed plan left the cache of the last one


# --------------------------------------------------------------------------- a cache that cannot be trusted


def _planned(base: Path, tmp_path: Path) -> tuple[Path, Path]:
    policies = tmp_path / "policies"
    shutil.copytree(base, policies)
    out = tmp_path / "out"
    first, _ = plan(policies, out)
    assert first.exit_code == 2
    return policies, out


@pytest.mark.parametrize(
    "damage",
    ["garbage index", "foreign salt", "manifest edited", "index removed", "yaml entry tampered", "no-cache"],
)
def test_a_damaged_or_foreign_cache_gives_a_full_plan(base: Path, tmp_path: Path, damage: str) -> None:
    policies, out = _planned(base, tmp_path)
    edit_device(policies, 3, 1)  # something to do
    index = out / tree.CACHE_DIR / incremental.INDEX
    extra: list[str] = []
    expect_full = True
    if damage == "garbage index":
        index.write_text(index.read_text()[:-40])
    elif damage == "foreign salt":
        doc = json.loads(index.read_text())
        doc["salt"] = "0" * 64
        index.write_text(json.dumps(doc))
    elif damage == "manifest edited":
        manifest = out / tree.MANIFEST
        manifest.write_text(manifest.read_text().replace('"version": 1', '"version": 1 '))
    elif damage == "index removed":
        index.unlink()
    elif damage == "yaml entry tampered":
        # Valid JSON holding another inventory: were it used, a device would get other interfaces.
        for entry in (out / tree.CACHE_DIR / incremental.YAML).glob("*.json"):
            entry.write_text(entry.read_text().replace('"bandwidth_kbps": 1', '"bandwidth_kbps": 2'))
        expect_full = False  # the device cache is sound: only the parse of the files is not trusted
    else:
        extra = ["--no-cache"]
    reference = full_copy(out, tmp_path / "reference")
    shutil.rmtree(reference / tree.CACHE_DIR)  # and no parsed files either
    result, compiled = plan(policies, out, *extra)
    full, _ = plan(policies, reference, *extra)
    assert result.exit_code == full.exit_code == 2
    assert (len(compiled) == DEVICES) if expect_full else (0 < len(compiled) < DEVICES)
    assert files(out) == files(reference)
    assert (out / tree.CACHE_DIR).exists() == (damage != "no-cache")  # --no-cache: none kept


def test_a_hand_edited_output_file_is_rendered_again(base: Path, tmp_path: Path) -> None:
    policies, out = _planned(base, tmp_path)
    device = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))[5]
    target = sorted(device.iterdir())[0]
    target.write_text(target.read_text() + "! edited by hand\n")
    compiled = same_as_full(policies, out, tmp_path)
    assert compiled == [device.name]
    assert b"edited by hand" not in target.read_bytes()


def test_files_of_others_in_a_device_folder_are_kept(base: Path, tmp_path: Path) -> None:
    policies, out = _planned(base, tmp_path)
    docs = _docs(_devices_file(policies))
    name = docs[0]["spec"]["devices"][0]["name"]
    (out / name / "notes.txt").write_text("mine\n")
    edit_device(policies, 0, 1)
    assert name in same_as_full(policies, out, tmp_path)
    assert (out / name / "notes.txt").read_text() == "mine\n"


# --------------------------------------------------------------------------- a patch killed half way


class Killed(BaseException):
    """Raised where the process would have been killed (click does not catch it)."""


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_patch_killed_at_any_rename_is_rolled_back(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies, out = _planned(base, tmp_path)
    add_or_remove_device(policies, 1, 1)  # one removed
    add_or_remove_device(policies, 2, 2)  # one added
    edit_journey(policies, 0, 5)  # some changed
    before = {**files(out)}
    renames = {"n": 0}
    real_rename, real_replace = os.rename, os.replace

    def counted(real: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        def call(a: Any, b: Any) -> None:
            renames["n"] += 1
            if renames["n"] == renames.get("kill", -1):
                raise Killed
            real(a, b)

        return call

    monkeypatch.setattr(os, "rename", counted(real_rename))
    monkeypatch.setattr(os, "replace", counted(real_replace))
    renames["n"] = 0
    probe = tmp_path / "probe"
    shutil.copytree(out, probe, copy_function=os.link)  # the same files (inodes): the cache holds for it
    plan(policies, probe)
    total = renames["n"]
    after = files(probe)
    assert total >= 4 and after != before
    for kill in range(1, total + 1):
        arena = tmp_path / f"arena-{kill}"
        shutil.copytree(out, arena / "out", copy_function=os.link)
        renames.update(n=0, kill=kill)
        with pytest.raises(Killed):
            CliRunner().invoke(
                cli, ["plan", str(policies), "--out", str(arena / "out"), "-j", "1", "--cache"], catch_exceptions=False
            )
        renames["kill"] = -1
        for left in arena.iterdir():  # the killed run's leftovers, as a process that is gone
            if ".qoectl-" in left.name:
                left.rename(arena / left.name.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-"))
        tree.claim(arena / "out", policies)
        now = files(arena / "out")
        assert now in (before, after), f"killed at rename {kill}: a mixed tree"
        assert [p.name for p in arena.iterdir()] == ["out"]
        result, _ = plan(policies, arena / "out")
        assert result.exit_code in (0, 2) and files(arena / "out") == after


def test_an_unchanged_manifest_is_written_as_read(base: Path, tmp_path: Path, monkeypatch: Any) -> None:
    """A re-plan that lists what the folder's manifest lists writes that file's text back (not serialised
    again), byte for byte what a full plan writes; one that changes a device's files serialises it."""
    policies = tmp_path / "policies"
    shutil.copytree(base, policies)
    out = tmp_path / "out"
    plan(policies, out)
    made: list[int] = []
    to_json = tree.Manifest.to_json
    monkeypatch.setattr(tree.Manifest, "to_json", lambda self: made.append(1) or to_json(self))
    assert plan(policies, out)[1] == []
    assert made == []
    monkeypatch.setattr(tree.Manifest, "to_json", to_json)
    assert same_as_full(policies, out, tmp_path) == []
    edit_device(policies, 3, 5)
    monkeypatch.setattr(tree.Manifest, "to_json", lambda self: made.append(1) or to_json(self))
    assert plan(policies, out)[1] != []
    assert made == [1]
    monkeypatch.setattr(tree.Manifest, "to_json", to_json)
    assert same_as_full(policies, out, tmp_path) == []
