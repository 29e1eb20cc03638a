"""The GitLab pipeline ``qoectl init`` writes, run end to end by gitlab-ci-local (shell executor) as root.

A temporary Git repository made by ``qoectl init`` whose inventory points at three Linux routers of the
test lab (network namespaces, sshd, host keys in the committed ``known_hosts``):

* a merge request with a broken journey stops at validate, and the JUnit report names the file and line;
* a merge request that raises the voice target: validate -> plan (the Markdown summary names the changed
  budget, plan JSON and rendered configs are artifacts);
* a scheduled pipeline verifies, runs the loop and, with nothing out of target, proposes nothing and touches
  no device; with softphones arriving unmarked for three scheduled runs (the loop's state in the job cache),
  the third pushes a branch with the loop's change and asks GitLab's API (a recording stand-in on 127.0.0.1)
  for the merge request;
* the merge on the default branch: validate -> canary (the manual gate, triggered explicitly) -> apply
  sharded over ``parallel: 2`` jobs -> verify; then the routers' own nftables/tc state is checked, and EF
  packets sent through each router land in its strict-priority class.

The only change to the generated file is that ``default: image:`` is removed (the shell executor has no
images); the credentials come from CI variables (``--variable``), as secret variables would give them.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from controller.scaffold.pipelines import PYTHON_IMAGE
from tests.lab.sshd import LinuxLab, SshRouter, requires_sshd

pytestmark = [requires_sshd, pytest.mark.root, pytest.mark.slow]

GCL_VERSION = "4.55."


def _gitlab_ci_local() -> tuple[str | None, str]:
    exe = shutil.which("gitlab-ci-local")
    if exe is None:
        return None, "needs gitlab-ci-local 4.55.x (npm install -g gitlab-ci-local@4.55; .ci/run installs it)"
    for tool in ("rsync", "git"):
        if shutil.which(tool) is None:
            return None, f"gitlab-ci-local needs {tool} (apt-get install {tool})"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    if not version.startswith(GCL_VERSION):
        return None, f"needs gitlab-ci-local {GCL_VERSION}x (Node 20), found {version or 'nothing'}"
    return exe, ""


GCL, _why = _gitlab_ci_local()
pytestmark.append(pytest.mark.skipif(GCL is None, reason=_why))

IMAGE_BLOCK = f"default:\n  image: {PYTHON_IMAGE}\n\n"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Net Engineer",
    "GIT_AUTHOR_EMAIL": "neteng@example.com",
    "GIT_COMMITTER_NAME": "Net Engineer",
    "GIT_COMMITTER_EMAIL": "neteng@example.com",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


@dataclass
class Pipeline:
    rc: int
    output: str
    results: dict[str, str]  # job -> PASS / FAIL / ...
    table: list[str]  # the closing job lines as gitlab-ci-local printed them


def run_pipeline(repo: Path, home: Path, variables: dict[str, str], *manual: str, keep: bool = False) -> Pipeline:
    """One gitlab-ci-local pipeline in ``repo`` (state of the previous run removed first unless ``keep``: caches)."""
    if not keep:
        shutil.rmtree(repo / ".gitlab-ci-local", ignore_errors=True)
    for artifact in ("reports", "out", "qoectl-runs", "base", "base-out", ".qoectl"):
        shutil.rmtree(repo / artifact, ignore_errors=True)
    cmd = [GCL or "gitlab-ci-local", "--shell-isolation", "--timestamps", "--no-color", "--home", str(home)]
    for name, value in variables.items():
        cmd += ["--variable", f"{name}={value}"]
    for job in manual:
        cmd += ["--manual", job]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_", "GITLAB_"))}
    env.update(GIT_ENV)
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    results: dict[str, str] = {}
    table: list[str] = []
    for line in output.splitlines():
        m = re.match(r"^\s*(PASS|FAIL|WARN)\s+(?:\[\s*[\d.]+\s*\w+\]\s+)?(\S.*?)\s*$", line)
        if m:
            results[m.group(2)] = m.group(1)
            table.append(line.rstrip())
    return Pipeline(proc.returncode, output, results, table)


def junit_cases(path: Path) -> list[ET.Element]:
    return list(ET.parse(path).getroot().iter("testcase"))


def lab_inventory(routers: list[SshRouter]) -> dict[str, object]:
    devices = []
    for i, r in enumerate(routers):
        devices.append(
            {
                "name": r.name,
                "platform": "linux",
                "host": r.host,
                "port": r.port,
                "site": "branch-1",
                "tags": ["wan-edge", "canary"] if i == 0 else ["wan-edge"],
                "credentials": {"username_env": "QOECTL_SSH_USER", "key_file": ".qoectl/ssh_key"},
                "interfaces": [
                    {"name": "wan0", "role": "wan", "transport": "biz-internet", "bandwidth_kbps": 20000},
                    {"name": "lan0", "role": "lan", "trust_dscp": False},
                ],
            }
        )
    return {
        "apiVersion": "qoectl/v1",
        "kind": "Inventory",
        "metadata": {"name": "devices", "owner": "netops@example.com"},
        "spec": {"devices": devices},
    }


def class_packets(router: SshRouter, classid: str) -> int:
    text = router.tc_classes(stats=True)
    m = re.search(rf"class htb {re.escape(classid)} .*?\n\s*Sent \d+ bytes (\d+) pkt", text)
    assert m, text
    return int(m.group(1))


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_gitlab_pipeline_end_to_end(linux_lab: LinuxLab, tmp_path: Path) -> None:
    routers = [linux_lab.router(name) for name in ("r1", "r2", "r3")]
    repo, home = tmp_path / "netpolicy", tmp_path / "gcl-home"
    home.mkdir()
    qoectl = Path(sys.executable).with_name("qoectl")
    subprocess.run([str(qoectl), "init", str(repo)], check=True, capture_output=True, timeout=120)

    # What the engineer does once: the real routers, their host keys, the shell runner (no image).
    devices = repo / "policies/inventory/devices.yaml"
    devices.write_text(
        "# yaml-language-server: $schema=../../schema/qoectl-v1.schema.json\n"
        + yaml.safe_dump(lab_inventory(routers), sort_keys=False)
    )
    linux_lab.known_hosts_file(repo / "known_hosts")
    ci = repo / ".gitlab-ci.yml"
    assert ci.read_text().count(IMAGE_BLOCK) == 1
    ci.write_text(ci.read_text().replace(IMAGE_BLOCK, ""))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "qoectl init + our routers")
    base_sha = git(repo, "rev-parse", "HEAD").strip()

    path_env = f"{qoectl.parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    common = {"QOECTL_INSTALL": f"export PATH={path_env}"}
    mr = {
        **common,
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "1",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": base_sha,
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
    }
    journeys = repo / "policies/journeys/journeys.yaml"
    tables: list[str] = []

    # 1. A broken journey: the MR stops at validate; the JUnit report names the file and the line.
    git(repo, "switch", "-q", "-c", "typo")
    journeys.write_text(journeys.read_text().replace("concurrent_flows: 10", "concurent_flows: 10"))
    bad_line = line_of(journeys, "concurent_flows")
    git(repo, "commit", "-q", "-am", "voice: more calls (typo)")
    bad = run_pipeline(repo, home, mr)
    tables += ["# merge request with a broken journey", *bad.table]
    assert bad.rc != 0 and bad.results.get("validate") == "FAIL", bad.output
    assert "plan" not in bad.results, bad.output
    failures = [c for c in junit_cases(repo / "reports/validate-junit.xml") if c.find("failure") is not None]
    assert [(c.get("file"), c.get("line")) for c in failures] == [("policies/journeys/journeys.yaml", str(bad_line))], (
        bad.output
    )
    message = failures[0].find("failure").get("message")  # type: ignore[union-attr]
    assert message.startswith(f"policies/journeys/journeys.yaml:{bad_line}:") and "concurrent_flows" in message

    # 2. The real change in an MR: validate, then plan with the change summary as the comment body.
    git(repo, "switch", "-q", "main")
    git(repo, "switch", "-q", "-c", "voice-4.1")
    journeys.write_text(journeys.read_text().replace("mos: 4.0", "mos: 4.1").replace("flows: 10", "flows: 12"))
    git(repo, "commit", "-q", "-am", "voice: MOS 4.1, 12 calls")
    good = run_pipeline(repo, home, mr)
    tables += ["# merge request: voice MOS 4.0 -> 4.1, 10 -> 12 calls", *good.table]
    assert good.rc == 0 and good.results == {"validate": "PASS", "plan": "PASS"}, good.output
    summary = (repo / "reports/plan.md").read_text()
    voice_row = next(line for line in summary.splitlines() if line.startswith("| voice |"))
    assert "4 → 4.1" in voice_row and "#### Budgets that changed" in summary, summary
    assert "crm-web" not in summary.split("#### Budgets that changed")[1].split("####")[0]
    plan = json.loads((repo / "reports/plan.json").read_text())
    assert {d["device"] for d in plan["devices"]} == {"r1", "r2", "r3"}
    assert plan["exit_code"] == 2 and all(d["status"] == "changed" for d in plan["devices"])
    for r in routers:
        assert (repo / "out" / r.name / "nftables.nft").is_file()

    # 3. Merged: the default branch's pipeline, the manual canary gate pressed, then the sharded apply.
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--ff-only", "voice-4.1")
    before = {r.name: r.state() for r in routers}
    secrets = {"QOECTL_SSH_USER": "root", "QOECTL_SSH_KEY": str(linux_lab.client_key)}
    push = run_pipeline(repo, home, {**common, **secrets}, "canary")
    tables += ["# default branch after the merge (canary gate pressed)", *push.table]
    expected = {"validate", "canary", "apply: [1/2]", "apply: [2/2]", "verify"}
    assert push.rc == 0 and push.results == dict.fromkeys(expected, "PASS"), push.output

    # Each job's audit log: the canary changed r1 alone; the shards split all three, r1 already in place.
    statuses: dict[str, list[str]] = {}
    for run in ("canary", "shard-1", "shard-2"):
        folder = repo / "qoectl-runs" / run
        events = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
        assert events, run
        result = json.loads((folder / "result.json").read_text())
        for d in result["devices"]:
            statuses.setdefault(d["device"], []).append(f"{run}:{d['status']}")
    assert statuses["r1"][0] == "canary:changed" and statuses["r1"][1].endswith(":unchanged"), statuses
    assert sorted(s.split(":")[1] for s in statuses["r2"] + statuses["r3"]) == ["changed", "changed"], statuses
    shards = {s.split(":")[0] for name in ("r1", "r2", "r3") for s in statuses[name] if not s.startswith("canary")}
    assert shards == {"shard-1", "shard-2"}, statuses  # both parallel jobs had devices

    # The routers really run the policy: the qoectl table and HTB tree, and EF lands in the priority class.
    for r in routers:
        assert r.state() != before[r.name]
        table = r.nft_table()
        assert "table inet qoectl" in table and "udp dport 16384-32767" in table and "dscp set ef" in table, table
        assert "htb" in r.tc_qdiscs()
        sent = class_packets(r, "1:10")
        r.send_ef(5)
        assert class_packets(r, "1:10") >= sent + 5

    after = {r.name: r.state() for r in routers}
    # verify: JUnit (one case per journey x segment, all in target) and the HTML report.
    cases = junit_cases(repo / "reports/verify-junit.xml")
    assert sorted(c.get("name") for c in cases) == [  # type: ignore[type-var]
        "backups @ branch-1",
        "crm-web @ branch-1",
        "voice @ branch-1",
    ]
    assert all(c.find("failure") is None for c in cases)
    assert "<html" in (repo / "reports/verify.html").read_text().lower()
    # The secret never reaches an artifact or the job logs.
    key = linux_lab.client_key.read_text().splitlines()[1]
    logs = "".join(p.read_text(errors="replace") for p in (repo / ".gitlab-ci-local/output").glob("*.log"))
    assert key not in logs and key not in push.output
    assert not any(key in p.read_text(errors="replace") for p in (repo / "qoectl-runs").rglob("*") if p.is_file())

    # 4. The schedule: verify, and the loop reads the same measurements; all in target, so nothing is proposed.
    schedule = run_pipeline(repo, home, {**common, "CI_PIPELINE_SOURCE": "schedule"})
    tables += ["# schedule", *schedule.table]
    assert schedule.rc == 0 and schedule.results == {"verify": "PASS", "propose": "PASS"}, schedule.output
    assert re.search(r"propose\s+> no change to propose$", schedule.output, re.MULTILINE) and not list(
        (repo / "proposals").glob("*.patch")
    )
    assert {r.name: r.state() for r in routers} == after  # a scheduled pipeline touches no device

    stages = {
        name: job["stage"]
        for name, job in yaml.safe_load(ci.read_text()).items()
        if isinstance(job, dict) and "stage" in job
    }
    rows = [
        f"{line}   (stage {stages.get(line.split('] ')[-1].split(':')[0].strip(), '-')})" if "] " in line else line
        for line in tables
    ]
    report = Path(os.environ.get("QOECTL_CI_JOB_TABLE", tmp_path / "job-table.txt"))
    report.write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


SOFTPHONE = """---
apiVersion: qoectl/v1
kind: Journey
metadata:
  name: softphone
  owner: uc-team@example.com
  description: Softphones that mark their own media EF (matched only when it arrives marked).
spec:
  traffic:
    match:
      - {protocol: udp, destination_ports: [5004], dscp: ef}
  target:
    voice: {codec: g711, mos: 4.0}
  priority: critical
  bandwidth: {per_flow_kbps: 90, concurrent_flows: 2}
  scope:
    device_tags: [canary]
"""


class _Api(http.server.BaseHTTPRequestHandler):
    """Records the merge-request calls the propose job makes (a stand-in for GitLab's REST API on 127.0.0.1)."""

    calls: ClassVar[list[tuple[str, str, dict[str, list[str]]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        self.calls.append((self.path, self.headers.get("PRIVATE-TOKEN", ""), urllib.parse.parse_qs(body)))
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"iid": 7}')

    def log_message(self, *args: object) -> None:
        pass


def test_gitlab_schedule_proposes_a_merge_request(tmp_path: Path) -> None:
    """Three scheduled pipelines (the loop's state carried in the job cache): the third proposes edge marking
    for a journey that keeps arriving unmarked; the job pushes the branch and asks for the merge request."""
    repo, home, remote = tmp_path / "netpolicy", tmp_path / "gcl-home", tmp_path / "remote.git"
    home.mkdir()
    qoectl = Path(sys.executable).with_name("qoectl")
    subprocess.run([str(qoectl), "init", str(repo)], check=True, capture_output=True, timeout=120)
    journeys = repo / "policies/journeys/journeys.yaml"
    journeys.write_text(journeys.read_text() + SOFTPHONE)
    rows = [(t, m, v) for t in range(1735689600, 1735689900, 60) for m, v in (("one_way_delay_ms", 300), ("dscp", 0))]
    (repo / "measurements/softphone.csv").write_text(
        "timestamp,journey,site,metric,value\n" + "".join(f"{t},softphone,branch-1,{m},{v}\n" for t, m, v in rows)
    )
    ci = repo / ".gitlab-ci.yml"
    ci.write_text(ci.read_text().replace(IMAGE_BLOCK, ""))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "policy with softphones")
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, timeout=60)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Api.calls = []
    try:
        path_env = f"{qoectl.parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        variables = {
            "QOECTL_INSTALL": f"export PATH={path_env}",
            "CI_PIPELINE_SOURCE": "schedule",
            "QOECTL_VERIFY_SOURCES": "--measurements measurements/samples.csv "
            "--measurements measurements/softphone.csv",
            "QOECTL_GITLAB_TOKEN": "glpat-test-token",
            "QOECTL_PUSH_URL": str(remote),
            "CI_API_V4_URL": f"http://127.0.0.1:{server.server_address[1]}/api/v4",
            "CI_PROJECT_ID": "42",
        }
        shutil.rmtree(repo / ".gitlab-ci-local", ignore_errors=True)
        runs = [run_pipeline(repo, home, variables, keep=True) for _ in range(3)]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    for n, run in enumerate(runs, 1):
        # verify says the softphones are out of target (the pipeline fails, as it should); propose still runs.
        assert run.results == {"verify": "FAIL", "propose": "PASS"}, run.output
        said = re.search(r"propose\s+> no change to propose$", run.output, re.MULTILINE) is not None
        assert said == (n < 3), run.output
    branches = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short)", "refs/heads/"],
        cwd=remote, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(branches) == 1 and branches[0].startswith("qoectl/loop-"), branches
    subject = git(remote, "log", "-1", "--format=%s", branches[0]).strip()
    assert subject.startswith("qoectl loop: mark at the edge softphone on br1-rtr1"), subject
    assert git(remote, "rev-parse", f"{branches[0]}~1") == git(repo, "rev-parse", "main")  # on top of main
    assert git(remote, "diff", "--name-only", f"{branches[0]}~1", branches[0]).split() == [
        "policies/adjustments/loop.yaml"
    ]
    # The proposal is a valid policy: check it out and validate it.
    review = tmp_path / "review"
    subprocess.run(["git", "clone", "-q", "-b", branches[0], str(remote), str(review)], check=True, timeout=60)
    ok = subprocess.run([str(qoectl), "validate", "--json"], cwd=review, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"], ok.stdout + ok.stderr
    (call,) = _Api.calls
    assert call[0] == "/api/v4/projects/42/merge_requests" and call[1] == "glpat-test-token"
    form = {k: v[0] for k, v in call[2].items()}
    assert (form["source_branch"], form["target_branch"], form["title"]) == (branches[0], "main", subject)
    assert "dscp_seen=0" in form["description"]
    assert "glpat-test-token" not in "".join(r.output for r in runs)  # the jobs never print the token
