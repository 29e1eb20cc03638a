"""``qoectl verify`` on bad measurement values exits 1 every time: it never aborts on its way out (issue 9).

The failure this guards against came *after* the error had been reported, as the interpreter exited:
a pyarrow worker thread still held the last reference to a Python object (the file's bytes) and took
the GIL to drop it while the interpreter was finalizing; Python ended the thread with ``pthread_exit``,
the unwind crossed a ``noexcept`` C++ destructor, and ``std::terminate`` aborted the process
("terminate called without an active exception", exit 134 in a shell). Only real interpreter exits
show it, and only now and then, so each case runs many times.

Importing the command line takes most of a run's time, so a driver imports it once (pyarrow excepted)
and forks a child per run, two at a time; each child runs ``main()`` as the console script does and
leaves by the ordinary exit path, interpreter finalization included. Before the fix 15 and 23 of these
600 runs aborted in two test runs (1 in 200 plain ``qoectl`` runs with the example policies); the test
takes about 35 s on two idle cores. One plain ``qoectl`` process per output mode checks that a forked
run says what the command says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli.main import EXIT_ERROR
from tests.verify_support import make_policy

RUNS = 100  # per case (bad value, with and without --json): 600 runs

BAD_VALUES = {
    "nan": ("nan", "one_way_delay_ms nan is not a finite number"),
    "inf": ("inf", "one_way_delay_ms inf is not a finite number"),
    "negative-delay": ("-5", "negative one-way delay -5 ms"),
}

DRIVER = r"""
import gc, json, os, sys

from controller.cli.main import main
# What verify imports when it runs, imported here once; pyarrow is not: each run starts Arrow's threads itself.
import controller.evaluate.engine, controller.evaluate.html, controller.evaluate.report  # noqa
import controller.measure.feedback, controller.measure.files, controller.measure.prometheus  # noqa

assert "pyarrow" not in sys.modules
gc.freeze()  # the children's collections skip what is imported here instead of copying every page of it
jobs, logs = json.loads(sys.argv[1]), sys.argv[2]
codes, running = [None] * len(jobs), {}


def reap():
    pid, status = os.wait()
    codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)  # killed by SIGABRT: -6


for i, args in enumerate(jobs):
    if len(running) == 2:
        reap()
    pid = os.fork()
    if pid == 0:  # the run: output to its log, then out through the interpreter's own exit, as qoectl does
        fd = os.open(os.path.join(logs, f"{i}.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.argv = ["qoectl", *args]
        main()
        sys.exit(0)
    running[pid] = i
while running:
    reap()
print(json.dumps(codes))
"""


def bad_file(folder: Path, name: str, value: str) -> Path:
    """Two rows, plain CSV: the file takes the pyarrow fast path, which declines it for the exact reader."""
    path = folder / f"{name}.csv"
    path.write_text(
        "timestamp,journey,site,metric,value\n"
        "1735689600,voice,hq,one_way_delay_ms,22\n"
        f"1735689601,voice,hq,one_way_delay_ms,{value}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    folder = tmp_path_factory.mktemp("exit")
    policy = make_policy(folder / "policies")
    return {
        name: ["verify", "--policies", str(policy), "--measurements", str(bad_file(folder, name, value))]
        for name, (value, _) in BAD_VALUES.items()
    }


def test_bad_values_exit_1_every_time(cases: dict[str, list[str]], tmp_path: Path) -> None:
    jobs = [(name, json_mode) for _ in range(RUNS) for name in cases for json_mode in (False, True)]
    argvs = [cases[name] + (["--json"] if json_mode else []) for name, json_mode in jobs]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(argvs), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    codes: list[int] = json.loads(done.stdout)
    wrong = [(i, jobs[i], code) for i, code in enumerate(codes) if code != EXIT_ERROR]
    assert not wrong, (
        f"{len(wrong)} of {len(codes)} runs did not exit {EXIT_ERROR}: "
        + "; ".join(f"{name}{' --json' if j else ''}: {code}" for _, (name, j), code in wrong[:10])
        + "\nfirst such run's output:\n"
        + (tmp_path / f"{wrong[0][0]}.log").read_text(encoding="utf-8", errors="replace")
    )
    for i, (name, json_mode) in enumerate(jobs[: 2 * len(cases)]):  # what each run reported
        text = (tmp_path / f"{i}.log").read_text(encoding="utf-8")
        assert BAD_VALUES[name][1] in text
        assert ('"ok": false' in text) == json_mode


@pytest.mark.parametrize("json_mode", [False, True])
def test_forked_runs_say_what_the_command_says(cases: dict[str, list[str]], tmp_path: Path, json_mode: bool) -> None:
    qoectl = Path(sys.executable).parent / "qoectl"
    if not qoectl.exists():
        pytest.skip("the qoectl console script is not installed beside this interpreter")
    args = cases["nan"] + (["--json"] if json_mode else [])
    real = subprocess.run([str(qoectl), *args], capture_output=True, text=True, timeout=120, check=False)
    forked = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps([args]), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert real.returncode == EXIT_ERROR
    assert json.loads(forked.stdout) == [EXIT_ERROR]
    assert (tmp_path / "0.log").read_text(encoding="utf-8") == real.stdout + real.stderr
