"""Prometheus as a source, against a real Prometheus server on 127.0.0.1 (Debian package ``prometheus``).

Deterministic tests load fixed samples with ``promtool tsdb create-blocks-from
openmetrics`` before the server starts; one test lets the server scrape a
live endpoint and waits for the first sample. Every server is stopped by its
PID in teardown, also when a test fails.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.evaluate.engine import Options, evaluate
from controller.measure.prometheus import PrometheusSource, redact
from controller.measure.samples import Vocabulary
from controller.pipeline import Build
from tests.verify_support import T0

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="needs the Debian package 'prometheus' (prometheus and promtool on PATH)",
)

QUERIES = """\
  verify:
    window: 5m
    objective_pct: 99
    queries:
      one_way_delay_ms: 'avg by (site) (qoectl_one_way_delay_ms{journey="voice"})'
      jitter_ms: 'avg by (site) (qoectl_jitter_ms{journey="voice"})'
      loss_pct: 'avg by (site) (qoectl_loss_pct{journey="voice"})'
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prom_build(folder: Path, queries: str = QUERIES) -> Build:
    from tests import verify_support

    text = verify_support.POLICY.replace("  verify:\n    window: 5m\n    objective_pct: 99\n", queries, 1)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.yaml").write_text(text)
    from controller.pipeline import build

    result = build(folder)
    assert result.ok, [d.format() for d in result.errors]
    return result


class Prometheus:
    """A Prometheus server on 127.0.0.1 with its own config and storage; ``stop()`` ends it by PID."""

    def __init__(self, workdir: Path, scrape_port: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        if scrape_port:
            config += "scrape_configs:\n  - job_name: probe\n    static_configs:\n"
            config += f"      - targets: ['127.0.0.1:{scrape_port}']\n"
        (workdir / "prometheus.yml").write_text(config)
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, deadline_s: float = 60.0) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def openmetrics(samples: list[tuple[str, str, float, float]]) -> str:
    """(metric, site, value, ts) -> OpenMetrics text, families contiguous, ending with # EOF."""
    lines = []
    for metric in sorted({s[0] for s in samples}):
        lines.append(f"# TYPE qoectl_{metric} gauge")
        for m, site, value, ts in samples:
            if m == metric:
                lines.append(f'qoectl_{metric}{{journey="voice",site="{site}"}} {value} {ts:.0f}')
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Ten minutes of voice samples: branch-2 at 180 ms and 3 % loss, branch-1 healthy."""
    work = tmp_path_factory.mktemp("prom")
    rows = []
    for k in range(10):
        ts = T0 + 60 * k
        rows += [
            ("one_way_delay_ms", "branch-2", 180.0, ts),
            ("jitter_ms", "branch-2", 5.0, ts),
            ("loss_pct", "branch-2", 3.0, ts),
        ]
        rows += [
            ("one_way_delay_ms", "branch-1", 30.0, ts),
            ("jitter_ms", "branch-1", 2.0, ts),
            ("loss_pct", "branch-1", 0.1, ts),
        ]
    (work / "data.om").write_text(openmetrics(rows))
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(work / "data.om"), str(work / "data")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = Prometheus(work)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_query_range_feeds_the_evaluation(loaded: Prometheus, tmp_path: Path) -> None:
    build = prom_build(tmp_path / "policy")
    source = PrometheusSource(loaded.url, build.policy, T0, T0 + 540, 60)
    samples, diags = source.read(Vocabulary(build.policy), T0 + 86400)
    assert diags == []
    assert len(samples) == 2 * 3 * 10
    ev = evaluate(build, samples, (), Options(start=T0 - 1, end=T0 + 540, now=T0 + 86400, journeys=("voice",)))
    by_site = {r.segment.name: r for r in ev.results}
    mos = next(c for c in by_site["branch-2"].checks if c.name == "mos")
    assert by_site["branch-2"].status == "fail" and mos.measured is not None and mos.measured < 4.0
    assert by_site["branch-1"].status == "pass"
    assert by_site["hq"].status == "unknown"


def test_promql_errors_point_at_the_query_in_the_policy(loaded: Prometheus, tmp_path: Path) -> None:
    broken = QUERIES.replace("avg by (site) (qoectl_loss_pct", "avg by (site) (qoectl_loss_pct{{", 1)
    build = prom_build(tmp_path / "policy", broken)
    _, diags = PrometheusSource(loaded.url, build.policy, T0, T0 + 540, 60).read(Vocabulary(build.policy), T0 + 86400)
    text = [d.format() for d in diags]
    assert len(text) == 1
    assert "policy.yaml:" in text[0] and "spec.verify.queries.loss_pct: Prometheus at" in text[0]
    assert "HTTP 400" in text[0] and "hint: check the PromQL" in text[0]


def test_series_without_a_site_label_are_reported(loaded: Prometheus, tmp_path: Path) -> None:
    no_site = QUERIES.replace("avg by (site) (qoectl_jitter_ms", "avg (qoectl_jitter_ms", 1)
    build = prom_build(tmp_path / "policy", no_site)
    _, diags = PrometheusSource(loaded.url, build.policy, T0, T0 + 540, 60).read(Vocabulary(build.policy), T0 + 86400)
    assert any("a series (no labels) has no site or context label" in d.format() for d in diags)


def test_unreachable_server_and_credentials_never_printed(tmp_path: Path) -> None:
    build = prom_build(tmp_path / "policy")
    url = f"http://admin:s3cret@127.0.0.1:{free_port()}"
    source = PrometheusSource(url, build.policy, T0, T0 + 60, 60, timeout_s=5)
    _, diags = source.read(Vocabulary(build.policy), T0 + 86400)
    text = "\n".join(d.format() for d in diags)
    assert "cannot reach Prometheus at http://127.0.0.1:" in text
    assert "s3cret" not in text and "admin" not in text and "s3cret" not in source.name
    assert redact("https://u:p@[::1]:9090/x") == "https://[::1]:9090/x"


class _Exporter(http.server.BaseHTTPRequestHandler):
    body = (
        b'# TYPE qoectl_one_way_delay_ms gauge\nqoectl_one_way_delay_ms{journey="voice",site="hq"} 25\n'
        b'# TYPE qoectl_jitter_ms gauge\nqoectl_jitter_ms{journey="voice",site="hq"} 1\n'
        b'# TYPE qoectl_loss_pct gauge\nqoectl_loss_pct{journey="voice",site="hq"} 0\n'
    )

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_live_scrape(tmp_path: Path) -> None:
    exporter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=exporter.serve_forever, daemon=True)
    thread.start()
    server = Prometheus(tmp_path, scrape_port=exporter.server_address[1])
    try:
        server.wait_ready()
        build = prom_build(tmp_path / "policy")
        vocab = Vocabulary(build.policy)
        deadline = time.monotonic() + 90
        samples = None
        while time.monotonic() < deadline:  # the first scrape takes a few seconds
            now = time.time()
            got, diags = PrometheusSource(server.url, build.policy, now - 120, now, 1).read(vocab, now)
            assert diags == []
            if len(got) >= 3:
                samples = got
                break
            time.sleep(1)
        assert samples is not None, "no sample scraped within 90 s"
        ev = evaluate(build, samples, (), Options(now=time.time(), journeys=("voice",)))
        hq = next(r for r in ev.results if r.segment.name == "hq")
        mos = next(c for c in hq.checks if c.name == "mos")
        assert mos.status == "pass" and mos.measured is not None and mos.measured > 4.3
    finally:
        server.stop()
        exporter.shutdown()
        exporter.server_close()


def test_prometheus_answers_as_expected_by_the_client(loaded: Prometheus) -> None:
    """The API shape the client relies on, asked directly."""
    query = 'qoectl_loss_pct{site="branch-2"}'
    url = f"{loaded.url}/api/v1/query_range?query={urllib.request.quote(query)}&start={T0}&end={T0 + 120}&step=60"
    with urllib.request.urlopen(url, timeout=10) as r:
        data = json.loads(r.read())
    assert data["status"] == "success" and data["data"]["resultType"] == "matrix"
    assert [v[1] for v in data["data"]["result"][0]["values"]] == ["3", "3", "3"]
