"""Prometheus as a measurement source, over its HTTP API (``/api/v1/query_range``).

Each journey's ``spec.verify.queries`` maps a metric name to PromQL. The
query is evaluated over the verification range at a fixed step; every
returned point becomes one sample. A series must tell where the users are with
a ``site`` label (or ``context``), e.g. ``avg by (site) (...)``; ``session``
and ``position_s`` labels are read as in files.

Problems (an unreachable server, a PromQL error, a series without a site)
point at the query in the policy YAML. Credentials in the URL
(``https://user:pass@host``) or in ``$QOECTL_PROMETHEUS_TOKEN`` are sent as
HTTP authentication and never printed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from controller.errors import Diagnostic, Location
from controller.measure import metrics as mt
from controller.measure.samples import Problems, RawColumns, SampleSet, Vocabulary, from_columns
from controller.model import Journey, Policy

MAX_POINTS = 11_000  # Prometheus refuses query_range answers of more points per series
TOKEN_ENV = "QOECTL_PROMETHEUS_TOKEN"  # noqa: S105 - the variable's name, not a secret


class PrometheusError(Exception):
    """The server could not answer a query; the message is safe to print (no credentials)."""


def redact(url: str) -> str:
    """The URL without user name and password."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_url(url: str) -> str | None:
    """A problem with ``url`` in words, or ``None`` when it can be used."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "give the Prometheus base URL as http://host:port or https://host:port"
    try:
        _ = parts.port
    except ValueError:
        return "the port in the Prometheus URL is not a number"
    return None


@dataclass(frozen=True)
class PrometheusClient:
    url: str
    timeout_s: float = 30.0
    token: str | None = field(default=None, repr=False)

    def _auth_header(self) -> dict[str, str]:
        parts = urllib.parse.urlsplit(self.url)
        if parts.username is not None:
            pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def query_range(self, query: str, start: float, end: float, step_s: float) -> list[dict[str, Any]]:
        """The ``result`` list of a range query (a matrix); raises :class:`PrometheusError`."""
        import urllib.error  # here: ``verify`` of files alone does not load the HTTP client (and ssl)
        import urllib.request

        base = redact(self.url).rstrip("/")
        body = urllib.parse.urlencode(
            {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
        )
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked by check_url
            base + "/api/v1/query_range",
            data=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", **self._auth_header()},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = ""
            with contextlib.suppress(ValueError, OSError, AttributeError):
                detail = json.loads(exc.read().decode("utf-8")).get("error", "")
            message = f"Prometheus at {base} answered HTTP {exc.code}" + (f": {detail}" if detail else "")
            raise PrometheusError(message) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusError(f"cannot reach Prometheus at {base}: {reason}") from None
        except ValueError:
            raise PrometheusError(f"Prometheus at {base} did not answer JSON: is this the right URL?") from None
        if not isinstance(payload, dict) or payload.get("status") != "success":
            message = payload.get("error", "unknown error") if isinstance(payload, dict) else "unexpected answer"
            raise PrometheusError(f"Prometheus at {base}: {message}")
        data = payload.get("data") or {}
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"the query gave a {data.get('resultType')}, not a range vector")
        result = data.get("result") or []
        if not isinstance(result, list):
            raise PrometheusError("unexpected answer from Prometheus")
        return result


@dataclass(frozen=True)
class PrometheusSource:
    """Runs every journey's ``verify.queries`` over ``[start, end]``."""

    url: str
    policy: Policy
    start: float
    end: float
    step_s: float = 60.0
    timeout_s: float = 30.0

    @property
    def name(self) -> str:
        return redact(self.url)

    def step(self) -> float:
        span = max(self.end - self.start, 0.0)
        return max(self.step_s, math.ceil(span / MAX_POINTS))

    def read(self, vocab: Vocabulary, now: float) -> tuple[SampleSet, list[Diagnostic]]:
        problems = Problems(self.name)
        client = PrometheusClient(self.url, self.timeout_s, os.environ.get(TOKEN_ENV) or None)
        journeys = [j for j in sorted(self.policy.journeys, key=lambda j: j.name) if j.verify.queries]
        if not journeys:
            problems.add(
                Location(self.name),
                "",
                "no journey has verify.queries, so there is nothing to ask Prometheus",
                "add spec.verify.queries (metric: PromQL) to the journeys to verify",
            )
            return SampleSet.empty(), problems.diagnostics()
        parts = []
        for journey in journeys:
            for metric, query in journey.verify.queries:
                parts.append(self._one(client, journey, metric, query, vocab, now, problems))
        return SampleSet.concat(parts), problems.diagnostics()

    def _one(
        self,
        client: PrometheusClient,
        journey: Journey,
        metric: str,
        query: str,
        vocab: Vocabulary,
        now: float,
        problems: Problems,
    ) -> SampleSet:
        path = ("spec", "verify", "queries", metric)
        loc, field_name = journey.origin.at(*path), journey.origin.field(*path)
        try:
            result = client.query_range(query, self.start, self.end, self.step())
        except PrometheusError as exc:
            problems.add(loc, field_name, str(exc), "check the PromQL in the Prometheus web UI, and the URL")
            return SampleSet.empty()
        rows: dict[str, list[Any]] = {k: [] for k in ("timestamp", "value", "site", "context", "session", "position")}
        for series in result:
            labels = series.get("metric") or {}
            if "site" not in labels and "context" not in labels:
                shown = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) or "no labels"
                problems.add(
                    loc,
                    field_name,
                    f"a series ({shown}) has no site or context label",
                    "keep the label in the query, e.g. avg by (site) (...)",
                )
                continue
            for point in series.get("values") or []:
                stamp, text = point[0], point[1]
                if text in ("NaN", "+Inf", "-Inf"):
                    continue  # no value at this step (e.g. 0/0): not a measurement
                rows["timestamp"].append(stamp)
                rows["value"].append(text)
                rows["site"].append(labels.get("site"))
                rows["context"].append(labels.get("context"))
                rows["session"].append(labels.get("session"))
                rows["position"].append(labels.get("position_s"))
        n = len(rows["timestamp"])
        raw = RawColumns(
            n=n,
            timestamp=rows["timestamp"],
            journey=[journey.name] * n,
            metric=[metric] * n,
            value=rows["value"],
            site=rows["site"],
            context=rows["context"],
            session=rows["session"],
            position_s=rows["position"],
        )
        assert metric in mt.INDEX  # the spec only allows known metric names
        return from_columns(raw, vocab, lambda i: loc, now, problems)
