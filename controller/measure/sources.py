"""The measurement sources of ``qoectl verify`` and ``qoectl loop``: files, Prometheus and users' feedback.

One place builds the sources from the options (``--measurements FILE ...``, ``--prometheus URL`` running each
journey's ``spec.verify.queries``, ``--feedback FILE ...``, ``--since``/``--until``/``--step``) and reads them,
so both commands read the same data the same way. Problems come back as diagnostics (``file:line: ...``); the
caller decides how to report them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from controller.errors import Diagnostic
from controller.measure import Source
from controller.measure.feedback import Answer, read_feedback
from controller.measure.files import FileSource
from controller.measure.prefetch import Prefetch
from controller.measure.prometheus import (
    TOKEN_ENV,
    PrometheusClient,
    PrometheusError,
    PrometheusSource,
    check_url,
    redact,
)
from controller.measure.samples import SampleSet, Vocabulary
from controller.model import Policy

PROMETHEUS_DEFAULT_RANGE_S = 3600.0


@dataclass(frozen=True)
class SourceOptions:
    """Where the measurements come from; ``since_s``/``until``/``step_s`` as ``qoectl verify`` reads them."""

    files: tuple[Path, ...] = ()
    prometheus_url: str | None = None
    feedback: tuple[Path, ...] = ()
    since_s: float | None = None
    until: float | None = None
    step_s: float = 60.0
    prefetched: tuple[Prefetch | None, ...] = ()  # per file, its parse started early (controller.measure.prefetch)

    @property
    def measures(self) -> bool:
        """A source of samples is given (feedback alone is not a measurement)."""
        return bool(self.files or self.prometheus_url)

    def names(self) -> tuple[str, ...]:
        out = [str(f) for f in self.files]
        if self.prometheus_url:
            out.append(redact(self.prometheus_url))
        return (*out, *(f"feedback {f}" for f in self.feedback))


@dataclass(frozen=True)
class Reading:
    """What the sources gave: the samples, the users' answers, every problem, and the range to evaluate."""

    samples: SampleSet
    answers: tuple[Answer, ...]
    diagnostics: tuple[Diagnostic, ...]
    start: float | None
    end: float | None

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")


def read_sources(opts: SourceOptions, policy: Policy, vocab: Vocabulary, now: float) -> Reading:
    """Read every source of ``opts``; the range is ``--since`` back from ``--until`` (or the last sample), and for
    Prometheus the queried range (default: the last hour up to now)."""
    since_s, end = opts.since_s, opts.until
    start = None if since_s is None or end is None else end - since_s
    early = opts.prefetched or (None,) * len(opts.files)
    sources: list[Source] = [FileSource(f, pre) for f, pre in zip(opts.files, early, strict=True)]
    if opts.prometheus_url:
        p_end = end if end is not None else now
        p_start = p_end - (since_s if since_s is not None else PROMETHEUS_DEFAULT_RANGE_S)
        sources.append(PrometheusSource(opts.prometheus_url, policy, p_start, p_end, opts.step_s))
        if start is None:
            start, end = p_start, p_end
    parts: list[SampleSet] = []
    diags: list[Diagnostic] = []
    for source in sources:
        samples, problems = source.read(vocab, now)
        parts.append(samples)
        diags += problems
    answers: list[Answer] = []
    for f in opts.feedback:
        got, problems = read_feedback(f, vocab, now)
        answers += got
        diags += problems
    samples = SampleSet.concat(parts)
    if start is None and since_s is not None and len(samples):
        end = end if end is not None else float(samples.ts.max())
        start = end - since_s
    return Reading(samples, tuple(answers), tuple(diags), start, end)


def check_prometheus(url: str, now: float, timeout_s: float = 10.0) -> str | None:
    """Why ``url`` cannot be used as the Prometheus source (a bad URL, or the server does not answer), or None."""
    problem = check_url(url)
    if problem:
        return problem
    client = PrometheusClient(url, timeout_s, os.environ.get(TOKEN_ENV) or None)
    try:
        client.query_range("vector(1)", now - 60.0, now, 60.0)
    except PrometheusError as exc:
        return str(exc)
    return None
