"""``qoectl plan --out``: qoectl owns an output folder only when it created it, and swaps trees atomically.

Real files and real processes: the refusals are checked by hashing every file
around the command before and after; the atomic swap by killing a real
``qoectl plan`` with SIGKILL at each file-changing system call it makes (strace
fault injection) and checking that the output folder is then exactly the old
tree or exactly the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.cli.main import cli
from controller.render import tree
from controller.render.outputs import update_tree, write_tree
from tests.policy_builder import PolicyRepo, device, voice_journey

QOECTL = Path(sys.executable).with_name("qoectl")


def run(*args: str | Path, cwd: Path | None = None) -> Result:
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        os.chdir(old)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a hash of its bytes (folders as 'dir')."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(result: Result, *fragments: str) -> None:
    text = result.output + result.stderr
    assert result.exit_code == 1, text
    assert "Traceback" not in text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return PolicyRepo.standard().write(tmp_path / "work" / "policies")


# --------------------------------------------------------------------------- refusals


def test_out_dot_beside_the_policies_is_refused_and_nothing_is_lost(policies: Path) -> None:
    work = policies.parent
    before = snapshot(work)
    refused(run("plan", "policies", "--out", ".", cwd=work), "--out .", "holds the policy path")
    assert snapshot(work) == before


@pytest.mark.parametrize("inside", ["", "rendered", "journeys/out"])
def test_out_equal_to_or_inside_the_policy_repo_is_refused(policies: Path, inside: str) -> None:
    before = snapshot(policies.parent)
    out = policies / inside if inside else policies
    refused(run("plan", policies, "--out", out), "policy path", "never writes into the policy repository")
    assert snapshot(policies.parent) == before


def test_plan_dot_out_dot_in_a_git_checkout_is_refused(policies: Path) -> None:
    subprocess.run(["git", "init", "-q", str(policies)], check=True)
    (policies / ".git" / "index").write_bytes(b"\xff\xfe binary \x00")  # what read_device used to choke on
    before = snapshot(policies)
    refused(run("plan", ".", "--out", ".", cwd=policies), "is the policy path")
    assert snapshot(policies) == before


def test_non_empty_folder_without_manifest_is_refused(policies: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes\n")
    (mine / "sub" / "x.cfg").write_text("hostname x\n")
    before = snapshot(mine)
    refused(run("plan", policies, "--out", mine), "--out", "not empty", tree.MANIFEST, "did not create it")
    assert snapshot(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "work"]  # no staging folder left behind


def test_a_file_as_out_is_refused_and_left_as_it_was(policies: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    refused(run("plan", policies, "--out", afile), "is a file, not a folder")
    assert afile.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "work"]  # no .afile.old


def test_empty_or_new_folder_becomes_owned(policies: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("plan", policies, "--out", empty).exit_code == 2
    assert run("plan", policies, "--out", tmp_path / "new" / "deeper").exit_code == 2
    for out in (empty, tmp_path / "new" / "deeper"):
        manifest = tree.read_manifest(out)
        assert manifest is not None and set(manifest.devices) == {"br1-rtr1", "hq-rtr1"}
        for rel in manifest.owned_paths():
            device, name = rel.split("/")
            assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == manifest.devices[device].files[name]


# --------------------------------------------------------------------------- only what the manifest lists


def test_files_qoectl_did_not_write_survive_every_replan(policies: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("plan", policies, "--out", out).exit_code == 2
    (out / "README.md").write_text("rendered by CI\n")
    (out / "theirs").mkdir()
    (out / "theirs" / "data.bin").write_bytes(b"\x00\xff")
    (out / "br1-rtr1" / "notes.txt").write_text("hand notes\n")
    (out / "hq-rtr1" / "link").symlink_to("nftables.nft")

    again = run("plan", policies, "--out", out)
    assert again.exit_code == 0, again.output  # foreign folders are not "removed devices"
    assert "theirs" not in again.stdout

    # drop br1-rtr1 from the inventory: its qoectl files go, the notes stay
    repo = PolicyRepo.standard()
    repo.set_devices([d for d in repo.devices() if d["name"] != "br1-rtr1"]).write(policies)
    gone = run("plan", policies, "--out", out, "--json")
    assert gone.exit_code == 2, gone.output
    statuses = {d["device"]: d["status"] for d in json.loads(gone.stdout)["devices"]}
    assert statuses == {"br1-rtr1": "removed", "hq-rtr1": "unchanged"}
    assert (out / "README.md").read_text() == "rendered by CI\n"
    assert (out / "theirs" / "data.bin").read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in (out / "br1-rtr1").iterdir()) == ["notes.txt"]
    assert os.readlink(out / "hq-rtr1" / "link") == "nftables.nft"
    manifest = tree.read_manifest(out)
    assert manifest is not None and set(manifest.devices) == {"hq-rtr1"}


def test_a_rendered_file_that_would_replace_a_foreign_file_is_refused(policies: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    repo = PolicyRepo.standard()
    only_hq = [d for d in repo.devices() if d["name"] != "br1-rtr1"]
    repo.copy().set_devices(only_hq).write(policies)
    assert run("plan", policies, "--out", out).exit_code == 2
    (out / "br1-rtr1").mkdir()
    (out / "br1-rtr1" / "qos.cfg").write_text("someone else's config\n")
    before = snapshot(out)
    repo.write(policies)  # br1-rtr1 is back and would be rendered to out/br1-rtr1/qos.cfg
    refused(run("plan", policies, "--out", out), "br1-rtr1/qos.cfg", "was not written by qoectl")
    assert snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if ".qoectl-" in p.name]


def test_baseline_reads_only_what_its_manifest_names(policies: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    assert run("plan", policies, "--out", base).exit_code == 2
    (base / "br1-rtr1" / "stray.cfg").write_text("not qoectl's\n")
    (base / "stray-device").mkdir()
    (base / "stray-device" / "qos.cfg").write_text("x\n")
    result = run("plan", policies, "--out", tmp_path / "next", "--baseline", base, "--json")
    assert result.exit_code == 0, result.output
    devices = json.loads(result.stdout)["devices"]
    assert {d["device"]: d["status"] for d in devices} == {"br1-rtr1": "unchanged", "hq-rtr1": "unchanged"}

    plain = tmp_path / "plain"
    shutil.copytree(base, plain)
    (plain / tree.MANIFEST).unlink()
    refused(run("plan", policies, "--out", tmp_path / "n2", "--baseline", plain), "--baseline", tree.MANIFEST)
    refused(run("plan", policies, "--out", tmp_path / "n3", "--baseline", tmp_path / "nowhere"), "--baseline")


def test_a_folder_from_an_earlier_qoectl_is_still_owned(policies: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("plan", policies, "--out", out).exit_code == 2
    manifest = tree.read_manifest(out)
    assert manifest is not None
    legacy = {d: {"platform": e.platform, "files": dict(e.files)} for d, e in manifest.devices.items()}
    (out / tree.MANIFEST).unlink()
    (out / "manifest.json").write_text(json.dumps(legacy))
    result = run("plan", policies, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / tree.MANIFEST).is_file() and not (out / "manifest.json").exists()


def test_damaged_manifest_is_a_clear_error(policies: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("plan", policies, "--out", out).exit_code == 2
    doc = json.loads((out / tree.MANIFEST).read_text())
    doc["devices"]["../../escape"] = {"platform": "linux", "files": {"x": "0" * 64}}
    (out / tree.MANIFEST).write_text(json.dumps(doc))
    before = snapshot(tmp_path)
    refused(run("plan", policies, "--out", out), "not a plain folder name", "damaged manifest")
    assert snapshot(tmp_path) == before


def test_render_out_replaces_one_device_and_keeps_the_rest(policies: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("plan", policies, "--out", out).exit_code == 2
    before = snapshot(out)
    (out / "mine.txt").write_text("mine\n")
    result = run("render", policies, "--device", "hq-rtr1", "--out", out)
    assert result.exit_code == 0, result.output
    after = snapshot(out)
    assert after.pop("mine.txt") and after == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a").write_text("a\n")
    refused(run("render", policies, "--device", "hq-rtr1", "--out", mine), "not empty")
    assert sorted(p.name for p in mine.iterdir()) == ["a"]


def test_update_tree_and_write_tree_keep_foreign_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, {"r1": ("linux", {"tc.batch": "a\n"}), "r2": ("linux", {"tc.batch": "b\n"})})
    (out / "keep.txt").write_text("k\n")
    update_tree(out, {"r2": ("linux", {"tc.batch": "c\n", "nftables.nft": "n\n"})})
    assert (out / "r1" / "tc.batch").read_text() == "a\n" and (out / "r2" / "tc.batch").read_text() == "c\n"
    manifest = tree.read_manifest(out)
    assert manifest is not None and sorted(manifest.owned_paths()) == ["r1/tc.batch", "r2/nftables.nft", "r2/tc.batch"]
    write_tree(out, {"r3": ("linux", {"tc.batch": "d\n"})})
    assert sorted(p.name for p in out.iterdir()) == [tree.MANIFEST, "keep.txt", "r3"]


# --------------------------------------------------------------------------- atomic swap, killed at any point


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_swap_cut_between_two_renames_is_recovered_by_the_next_plan(policies: Path, tmp_path: Path) -> None:
    """Where the system cannot exchange two folders: a run that died between its renames loses nothing."""
    out = tmp_path / "out"
    assert run("plan", policies, "--out", out).exit_code == 2
    old_tree = snapshot(out)
    pid = _dead_pid()
    os.replace(out, tmp_path / f".out.qoectl-old-{pid}-abc")  # the first rename happened, the second did not
    stale = tmp_path / f".out.qoectl-staging-{pid}-def"
    stale.mkdir()
    (stale / "half").write_text("half-written\n")
    result = run("plan", policies, "--out", out)
    assert result.exit_code == 0, result.output  # the old tree was put back, so nothing changes
    assert snapshot(out) == old_tree
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "work"]


def test_leftovers_of_a_live_plan_are_not_touched(tmp_path: Path) -> None:
    busy = tmp_path / f".out.qoectl-staging-{os.getpid()}-xyz"
    busy.mkdir()
    write_tree(tmp_path / "out", {"r1": ("linux", {"tc.batch": "a\n"})})
    assert busy.is_dir()


def _kill_points(cmd: list[str], env: dict[str, str]) -> list[tuple[str, int]]:
    """(system call, n): every file-changing call the plan makes that could leave a mix if cut there."""
    counts = Path(env["TMPDIR"]) / "strace-count.txt"
    calls = "mkdir,renameat2,rename,unlinkat,rmdir,link"
    subprocess.run(
        ["strace", "-f", "-c", "-o", str(counts), "-e", f"trace={calls}", *cmd],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    points: list[tuple[str, int]] = []
    for line in counts.read_text().splitlines():
        words = line.split()
        if len(words) >= 5 and words[-1] in calls.split(",") and words[3].isdigit():
            n = int(words[3])
            picks = sorted({1, 2, n // 2, n - 1, n} - {0}) if n > 6 else list(range(1, n + 1))
            points += [(words[-1], k) for k in picks if k <= n]
    return points


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (Debian package strace) to kill at syscalls")
def test_plan_killed_at_any_file_change_leaves_the_old_tree_or_the_new_one(tmp_path: Path) -> None:
    v1 = PolicyRepo.standard()
    v2 = v1.copy().add_journey(voice_journey("more-voice", port=5004, flows=2))
    v2.set_devices([*v2.devices()[1:], device("br9-rtr1", "cisco_iosxe", "branch-1")])  # one removed, one new
    p1, p2 = v1.write(tmp_path / "v1"), v2.write(tmp_path / "v2")
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(tmp_path)}

    def plan(policies: Path, out: Path, *, strace: list[str] | None = None) -> int:
        cmd = [str(QOECTL), "plan", str(policies), "--out", str(out), "--no-diff", "--jobs", "1"]
        proc = subprocess.run([*(strace or []), *cmd], env=env, capture_output=True, timeout=120, check=False)
        return proc.returncode

    assert plan(p1, tmp_path / "ref-old") == 2 and plan(p2, tmp_path / "ref-new") == 2
    old_tree, new_tree = snapshot(tmp_path / "ref-old"), snapshot(tmp_path / "ref-new")
    assert old_tree != new_tree

    arena = tmp_path / "arena"
    arena.mkdir()
    out = arena / "out"
    shutil.copytree(tmp_path / "ref-old", out)
    points = _kill_points([str(QOECTL), "plan", str(p2), "--out", str(out), "--no-diff", "--jobs", "1"], env)
    assert any(name in ("renameat2", "rename") for name, _ in points), points  # the swap is among the kill points
    assert len(points) >= 8, points
    seen = {"old": 0, "new": 0}
    for name, n in points:
        shutil.rmtree(arena)
        arena.mkdir()
        shutil.copytree(tmp_path / "ref-old", out)
        strace = ["strace", "-f", "-o", "/dev/null", "-e", f"trace={name}", "-e", f"inject={name}:signal=KILL:when={n}"]
        code = plan(p2, out, strace=strace)
        now = snapshot(out)
        assert now in (old_tree, new_tree), f"killed at {name} #{n} (exit {code}): a mixed tree"
        seen["old" if now == old_tree else "new"] += 1
        # the next plan cleans up after the killed one and ends with exactly the new tree
        assert plan(p2, out) in (0, 2)
        assert snapshot(out) == new_tree
        assert sorted(p.name for p in arena.iterdir()) == ["out"], f"leftovers after {name} #{n}"
    assert seen["old"] and seen["new"], seen  # kills landed both before and after the swap
