"""The ``qoectl`` command line, through click's runner and once as the real console script."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result
from pydantic import BaseModel

from controller.cli.main import cli
from controller.spec import v1
from tests.conftest import EXAMPLE_POLICIES, REPO
from tests.policy_builder import PolicyRepo, voice_journey


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return PolicyRepo.standard().write(tmp_path / "policies")


# --------------------------------------------------------------------------- validate


def test_validate_ok(repo_dir: Path) -> None:
    result = run("validate", repo_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok: 2 journeys, 2 devices, 2 sites"


def test_validate_missing_path_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = run("validate", tmp_path / "nowhere")
    assert result.exit_code == 1
    no_traceback(result)
    assert "no such file or directory" in result.stderr


# --------------------------------------------------------------------------- plan


def test_plan_exit_codes_and_output_tree(repo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run("plan", repo_dir, "--out", out)
    assert first.exit_code == 2, first.output  # everything is new
    no_traceback(first)
    assert "+! qoectl: QoS for br1-rtr1" in first.stdout  # the diff is shown
    assert "2 of 2 devices change" in first.stdout
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [".qoectl-plan.json", "br1-rtr1/qos.cfg", "hq-rtr1/nftables.nft", "hq-rtr1/tc.batch"]
    doc = json.loads((out / ".qoectl-plan.json").read_text())
    assert doc["kind"] == "qoectl-plan-output" and doc["version"] == 1
    manifest = doc["devices"]
    for device, entry in manifest.items():
        for name, digest in entry["files"].items():
            assert hashlib.sha256((out / device / name).read_bytes()).hexdigest() == digest
    assert manifest["br1-rtr1"]["platform"] == "cisco_iosxe"

    second = run("plan", repo_dir, "--out", out)
    assert second.exit_code == 0, second.output
    assert "no changes" in second.stdout

    PolicyRepo.standard().add_journey(voice_journey("more-voice", port=5004, flows=2)).write(repo_dir)
    third = run("plan", repo_dir, "--out", out, "--no-diff")
    assert third.exit_code == 2
    assert "+ip access-list extended QOECTL-J-MORE-VOICE" not in third.stdout  # --no-diff
    assert "2 of 2 devices change" in third.stdout


def test_plan_again_links_unchanged_files_and_rewrites_edited_ones(repo_dir: Path, tmp_path: Path) -> None:
    """A second plan reuses (hard-links) files whose text is unchanged; a file edited in out/ is seen and rewritten."""
    out = tmp_path / "out"
    assert run("plan", repo_dir, "--out", out).exit_code == 2
    nft, tc, ios = out / "hq-rtr1" / "nftables.nft", out / "hq-rtr1" / "tc.batch", out / "br1-rtr1" / "qos.cfg"
    rendered = {p: p.read_bytes() for p in (nft, tc, ios)}
    inode = {p: p.stat().st_ino for p in (nft, tc, ios)}
    tc.write_bytes(rendered[tc].replace(b"\n", b"\r\n"))  # only the line ends differ
    ios.write_bytes(rendered[ios] + b"! edited by hand\n")
    edited = {p: p.stat().st_ino for p in (tc, ios)}

    again = run("plan", repo_dir, "--out", out, "--json")
    assert again.exit_code == 2, again.output
    files = {d["device"]: d["files"] for d in json.loads(again.stdout)["devices"]}
    assert files["hq-rtr1"]["nftables.nft"]["status"] == "unchanged"
    assert files["hq-rtr1"]["tc.batch"]["status"] == "changed"
    assert files["br1-rtr1"]["qos.cfg"]["diff"].rstrip().endswith("-! edited by hand")
    assert nft.stat().st_ino == inode[nft]  # linked, not written again
    assert tc.stat().st_ino != edited[tc] and ios.stat().st_ino != edited[ios]
    assert {p: p.read_bytes() for p in (nft, tc, ios)} == rendered
    assert all(p.stat().st_nlink == 1 for p in (nft, tc, ios))  # the replaced tree is gone


def test_plan_with_a_baseline_never_links_into_it(repo_dir: Path, tmp_path: Path) -> None:
    base = tmp_path / "deployed"
    assert run("plan", repo_dir, "--out", base).exit_code == 2
    assert run("plan", repo_dir, "--out", tmp_path / "fresh", "--baseline", base).exit_code == 0
    fresh = sorted(p for p in (tmp_path / "fresh").rglob("*") if p.is_file())
    assert fresh and all(p.stat().st_nlink == 1 for p in fresh)


def test_plan_with_errors_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    repo.add_journey(voice_journey("bad", mos=4.4, codec="g729a", port=5004))
    out = tmp_path / "out"
    result = run("plan", repo.write(tmp_path / "p"), "--out", out)
    assert result.exit_code == 1
    no_traceback(result)
    assert "cannot be reached with g729a" in result.stderr
    assert not out.exists()


def test_plan_baseline(repo_dir: Path, tmp_path: Path) -> None:
    base = tmp_path / "deployed"
    assert run("plan", repo_dir, "--out", base).exit_code == 2
    same = run("plan", repo_dir, "--out", tmp_path / "fresh", "--baseline", base)
    assert same.exit_code == 0, same.output  # nothing differs from the baseline, although --out was empty
    PolicyRepo.standard().add_journey(voice_journey("more-voice", port=5004, flows=2)).write(repo_dir)
    changed = run("plan", repo_dir, "--out", tmp_path / "fresh", "--baseline", base)
    assert changed.exit_code == 2
    assert "+ip access-list extended QOECTL-J-MORE-VOICE" in changed.stdout
    missing = run("plan", repo_dir, "--out", tmp_path / "x", "--baseline", tmp_path / "no-such-dir")
    assert missing.exit_code == 1 and "does not exist" in missing.stderr  # 1, not click's 2 (2 means "changes")
    no_traceback(missing)


def test_plan_json(repo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("plan", repo_dir, "--out", out, "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["exit_code"] == 2 and data["changed"] == 2
    assert data["out"] == str(out)
    by_device = {d["device"]: d for d in data["devices"]}
    assert by_device["br1-rtr1"]["status"] == "new" and by_device["br1-rtr1"]["platform"] == "cisco_iosxe"
    assert by_device["br1-rtr1"]["files"]["qos.cfg"]["diff"].startswith("--- a/br1-rtr1/qos.cfg")
    assert by_device["hq-rtr1"]["added"] > 0 and by_device["hq-rtr1"]["removed"] == 0
    again = json.loads(run("plan", repo_dir, "--out", out, "--json").stdout)
    assert again["exit_code"] == 0 and again["changed"] == 0
    assert {d["status"] for d in again["devices"]} == {"unchanged"}


def test_plan_json_errors(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    repo.add_journey(voice_journey("bad", mos=4.4, codec="g729a", port=5004))
    result = run("plan", repo.write(tmp_path / "p"), "--out", tmp_path / "o", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert [d["field"] for d in data["diagnostics"]] == ["spec.target.voice.mos"]


# --------------------------------------------------------------------------- render and explain


def test_render_one_device(repo_dir: Path, tmp_path: Path) -> None:
    shown = run("render", repo_dir, "--device", "br1-rtr1")
    assert shown.exit_code == 0
    assert shown.stdout.startswith("# ---- br1-rtr1/qos.cfg\n! qoectl: QoS for br1-rtr1")
    assert shown.stdout.rstrip().endswith("end")
    written = run("render", repo_dir, "--device", "hq-rtr1", "--out", tmp_path / "r")
    assert written.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "r" / "hq-rtr1").iterdir()) == ["nftables.nft", "tc.batch"]
    unknown = run("render", repo_dir, "--device", "br9")
    assert unknown.exit_code == 1
    no_traceback(unknown)
    assert "unknown device 'br9'; devices: br1-rtr1, hq-rtr1" in unknown.stderr


def test_explain_voice(repo_dir: Path) -> None:
    result = run("explain", "voice", "--policies", repo_dir)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "journey voice (voice, priority critical" in text
    assert "one-way 178.4 ms capped at 150 ms" in text
    assert "one_way_delay_ms: 150.0" in text
    assert "br1-rtr1 (cisco_iosxe, site branch-1): class telephony queue 0 strict priority, DSCP ef" in text
    assert "ip access-list extended QOECTL-J-VOICE" in text


def test_explain_json_and_device_filter(repo_dir: Path) -> None:
    data = json.loads(run("explain", "voice", "--policies", repo_dir, "--device", "hq-rtr1", "--json").stdout)
    assert data["journey"] == "voice" and data["service_class"] == "telephony"
    assert data["budget"]["one_way_delay_ms"] == 150.0 and data["budget"]["mos"] == 4.0
    assert [d["device"] for d in data["devices"]] == ["hq-rtr1"]
    assert data["devices"][0]["interfaces"][0]["police_kbps"] == 900


def test_explain_unknown_journey(repo_dir: Path) -> None:
    result = run("explain", "fax", "--policies", repo_dir)
    assert result.exit_code == 1
    no_traceback(result)
    assert "unknown journey 'fax'; journeys: " in result.stderr


# --------------------------------------------------------------------------- schema


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every pydantic model reachable from ``root``'s fields."""
    from controller.load.loader import _unwrap_model

    found = {root.__name__: root}
    for info in root.model_fields.values():
        inner = _unwrap_model(info.annotation)
        if inner is not None and inner.__name__ not in found:
            found.update(_models(inner))
    return found


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = run("schema")
    assert result.exit_code == 0
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_schema_is_valid_json_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_is_generated_from_the_models(schema: dict[str, Any]) -> None:
    models: dict[str, type[BaseModel]] = {}
    for doc in v1.DOC_MODELS.values():
        models.update(_models(doc))
    assert set(models) <= set(schema["$defs"]), "a spec model is missing from the schema"
    for name, model in models.items():
        definition = schema["$defs"][name]
        assert set(definition["properties"]) == set(model.model_fields), name
        assert definition["additionalProperties"] is False, f"{name} must reject unknown keys"
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert set(definition.get("required", [])) == required, name


def test_example_documents_validate_against_the_schema(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    docs = [d for p in sorted(EXAMPLE_POLICIES.rglob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    assert len(docs) >= 8
    for doc in docs:
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, f"{doc['kind']} {doc['metadata']['name']}: {errors}"


def test_schema_rejects_what_validate_rejects(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    good = voice_journey("voice")
    assert validator.is_valid(good)
    typo = json.loads(json.dumps(good))
    typo["spec"]["priorty"] = "high"
    assert not validator.is_valid(typo)
    bad_name = json.loads(json.dumps(good))
    bad_name["metadata"]["name"] = "voice\ninterface x"
    assert not validator.is_valid(bad_name)


def test_schema_to_file(tmp_path: Path, schema: dict[str, Any]) -> None:
    target = tmp_path / "s" / "qoectl.schema.json"
    assert run("schema", "--out", target).exit_code == 0
    assert json.loads(target.read_text()) == schema


# --------------------------------------------------------------------------- qoe voice


def test_qoe_voice_json_values() -> None:
    result = run("qoe", "voice", "--delay-ms", "150", "--jitter-ms", "10", "--loss-pct", "0.5", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    # By hand: d = 150 + 2*10 + 10 = 180 > 177.3, Id = 0.024*180 + 0.11*2.7 = 4.617;
    # Ie,eff = 95 * 0.5 / (0.5 + 4.3) = 9.8958; R = 93.2 - 4.617 - 9.8958 = 78.6872;
    # MOS = 1 + 0.035 R + 7e-6 R (R - 60)(100 - R) = 3.9734.
    assert data["r"] == pytest.approx(78.6872, abs=1e-4)
    assert data["mos"] == pytest.approx(3.9734, abs=1e-4)
    assert data["codec"] == "g711" and data["effective_delay_ms"] == 180.0


def test_qoe_voice_text_and_bad_input() -> None:
    text = run("qoe", "voice", "--delay-ms", "0", "--codec", "g729a")
    assert text.exit_code == 0 and "R = 81.96  MOS = 4.10  (g729a" in text.stdout
    bad = run("qoe", "voice", "--delay-ms", "-5")
    assert bad.exit_code == 2
    no_traceback(bad)
    assert "--delay-ms" in bad.stderr


# --------------------------------------------------------------------------- the real console script


def _console_script() -> str:
    found = shutil.which("qoectl", path=str(Path(sys.executable).parent))
    if found is None:  # pragma: no cover - the package is always installed in the venv that runs the tests
        pytest.skip("the qoectl console script is not installed next to this Python (pip install -e .)")
    return found


def test_console_script_end_to_end(tmp_path: Path) -> None:
    exe = _console_script()
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    ok = subprocess.run([exe, "validate", str(EXAMPLE_POLICIES)], capture_output=True, text=True, env=env, cwd=REPO,
                        timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: ")
    repo = PolicyRepo.standard()
    repo.add_journey(voice_journey("bad", mos=4.2, codec="g729a", port=5004))
    bad = subprocess.run([exe, "validate", str(repo.write(tmp_path / "p"))], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert "bad.yaml:17:7: spec.target.voice.mos: MOS 4.2 cannot be reached with g729a" in bad.stderr
    qoe = subprocess.run([exe, "qoe", "voice", "--delay-ms", "150", "--jitter-ms", "10", "--loss-pct", "0.5", "--json"],
                         capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert qoe.returncode == 0
    assert json.loads(qoe.stdout)["mos"] == pytest.approx(3.9734, abs=1e-4)
