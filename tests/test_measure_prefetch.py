"""CSV files parsed in a thread while the policy loads (:mod:`controller.measure.prefetch`) read as without it.

The prefetch only saves time: for every kind of file (clean, quoted, with a bad row, CRLF, missing, not
UTF-8) a :class:`~controller.measure.files.FileSource` with a prefetch gives the same samples and the same
diagnostics as one without, and the thread is over once its result is taken. ``qoectl verify`` starts the
prefetch before it loads the policy, so a policy error can end the command while a large file is still
being parsed: the command still exits 1 with the policy's diagnostics, every time (a thread of Arrow's
outliving the interpreter aborted the process before: ``tests/test_verify_exit.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.measure import fastcsv
from controller.measure.files import FileSource
from controller.measure.prefetch import Prefetch, prefetch
from controller.measure.samples import Vocabulary
from tests.verify_support import T0, assert_same_samples, make_policy, policy_build, voice_rows, write_csv

NOW = T0 + 86_400.0
pytestmark = pytest.mark.skipif(not fastcsv.available(), reason="pyarrow is not installed: nothing is prefetched")


def _files(folder: Path) -> dict[str, Path]:
    rows = voice_rows("hq", 40, 5, 0.5) + voice_rows("branch-1", 180, 30, 3)
    clean = write_csv(folder / "clean.csv", rows)
    text = clean.read_text(encoding="utf-8")
    contents = {
        "crlf": text.replace("\n", "\r\n").encode(),
        "quoted": text.replace(",hq,", ',"hq",').encode(),
        "bad-row": (text + f"{T0},voice,hq,jitter_ms,-3\n").encode(),
        "lone-cr": text.replace("\n", "\r", 3).encode(),
        "not-utf8": text.encode() + f"{T0},voice,h\xe9,loss_pct,1\n".encode("latin-1"),
        "unknown-column": text.replace("metric", "metrik", 1).encode(),
    }
    out = {"clean": clean}
    for kind, data in contents.items():
        out[kind] = folder / f"{kind}.csv"
        out[kind].write_bytes(data)
    out["missing"] = folder / "missing.csv"
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Vocabulary, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("prefetch")
    built = policy_build(folder / "policies")
    return Vocabulary(built.policy), _files(folder)


@pytest.mark.parametrize(
    "kind", ["clean", "crlf", "quoted", "bad-row", "lone-cr", "not-utf8", "unknown-column", "missing"]
)
def test_a_prefetched_file_reads_as_without(setup: tuple[Vocabulary, dict[str, Path]], kind: str) -> None:
    vocab, files = setup
    path = files[kind]
    ahead = Prefetch(path)
    with_prefetch = FileSource(path, ahead).read(vocab, NOW)
    assert not ahead._thread.is_alive()
    without = FileSource(path).read(vocab, NOW)
    assert_same_samples(with_prefetch[0], without[0])
    assert with_prefetch[1] == without[1]
    assert (ahead.result() is not None) == (kind in ("clean", "crlf", "bad-row")), (
        "Arrow parses every plain UTF-8 file with a good header (the bad row is declined after, in the check)"
    )
    assert bool(without[1]) == (kind in ("bad-row", "not-utf8", "unknown-column", "missing"))
    if kind in ("clean", "crlf", "quoted", "lone-cr"):
        assert len(with_prefetch[0]) == 60


def test_only_csv_files_are_prefetched(tmp_path: Path) -> None:
    got = prefetch([tmp_path / "a.csv", tmp_path / "b.jsonl", tmp_path / "c.CSV", tmp_path / "d.om"])
    assert [type(p).__name__ if p else None for p in got] == ["Prefetch", None, "Prefetch", None]
    for p in got:
        if p is not None:
            assert p.result() is None  # the files do not exist: the exact reader reports that


def test_a_policy_error_during_the_parse_exits_1_every_time(tmp_path: Path) -> None:
    """The parse of a large file is still running when the policy's error ends the command."""
    policy = make_policy(tmp_path / "policies", "---\napiVersion: qoectl/v1\nkind: Journey\nmetadata: {name: x}\n")
    big = tmp_path / "big.csv"
    rows = "".join(f"{T0 + i},voice,hq,one_way_delay_ms,{20 + i % 7}\n" for i in range(400_000))
    big.write_text("timestamp,journey,site,metric,value\n" + rows, encoding="utf-8")
    qoectl = [sys.executable, "-c", "import sys; from controller.cli.main import main; sys.argv[0] = 'qoectl'; main()"]
    for _ in range(5):
        done = subprocess.run(
            [*qoectl, "verify", str(policy), "--measurements", str(big)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert "policy.yaml:" in done.stderr and "spec" in done.stderr
        assert "Traceback" not in done.stderr and "terminate called" not in done.stderr
