"""Prometheus recording and alerting rules that judge journeys as ``qoectl verify`` does.

Per journey one rule group, evaluated in order every ``interval`` (the step
``qoectl verify --prometheus`` queries at):

1. ``qoectl:journey_sample``: each source series (``verify.queries``, or the
   ``qoectl_<metric>`` families), one sample per evaluation as a range query
   at that step gives, values outside the metric's plausible range left out
   as verify leaves them out;
2. ``qoectl:journey_measure:window``: per segment (site, else context) the
   mean of the samples of the last ``verify.window``; the voice MOS is the
   E-model of the mean delay, jitter and loss (``controller.qoe.emodel``);
3. ``qoectl:journey_check:miss_window``: 1 when a primary check misses in the
   window, 0 when it is met (a MOS with an input not measured can only miss);
4. ``qoectl:journey_window:error``: 1 when a check missed, 0 when every check
   was measured and met, no sample otherwise (verify's bad / good / unknown);
5. ``slo:sli_error:ratio_rate<look-back>`` (Sloth's names and ``sloth_*``
   labels): bad windows over decided windows of verify's look-backs and
   period, counted at the window's resolution so a look-back holds the same
   ``ceil(look-back / window)`` windows as verify's;
6. Sloth's metadata (objective, error budget, period, burn rates) and the
   targets; the period's ratio and burn rate in a second group
   (``qoectl-journey-<name>-period``) evaluated once a window, since a period
   holds thousands of windows and no alert reads it;
7. the multi-window burn-rate alerts of :data:`controller.evaluate.slo.ALERTS`:
   one ``QoectlErrorBudgetBurn`` rule per severity, firing when the long and
   the short look-back both burn at least ``burn_factor(period, share,
   long)`` times the budget, compared exactly as verify compares them.

Ranges are one millisecond (Prometheus's resolution) short of their length:
Prometheus 2 includes a range's start, 3 does not; both then select exactly
verify's ``(end - length, end]``, samples and subquery steps alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from controller.evaluate import slo
from controller.evaluate.checks import CheckSpec
from controller.export.sli import JourneySli, Note, inputs, plan
from controller.measure import metrics as mt
from controller.model import Policy
from controller.pipeline import Build
from controller.qoe import emodel

SEGMENT = "journey, site, context"
SAMPLE = "qoectl:journey_sample"
MEASURE = "qoectl:journey_measure:window"
MISS = "qoectl:journey_check:miss_window"
ERROR = "qoectl:journey_window:error"
R_FACTOR = "qoectl:journey_emodel:r_window"
TARGET = "qoectl:journey_target"
SITE_INFO = "qoectl:site:info"
ALERT = "QoectlErrorBudgetBurn"
SERVICE = "qoectl"
TOLERANCE = 1e-9  # verify's: a measure within this of its target meets it


# --------------------------------------------------------------------------- small pure helpers


def duration(seconds: float) -> str:
    """A Prometheus duration: 300 -> 5m, 299 -> 4m59s, 2592000 -> 30d."""
    ms = round(seconds * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts) or "0s"


def num(x: float) -> str:
    """A float as a PromQL literal that parses back to the same double."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def short_range(seconds: float) -> str:
    """A range of ``seconds`` less one millisecond (see the module's docstring)."""
    return duration(max(seconds - 0.001, 0.001))


def windows_in(lookback_s: float, window_s: float) -> int:
    """How many windows verify counts in a look-back (:func:`controller.evaluate.slo.burn_rate`)."""
    return max(1, math.ceil(lookback_s / window_s - 1e-9))


def lookbacks() -> tuple[float, ...]:
    """The look-backs of verify's alerts, shortest first."""
    return tuple(sorted({s for _, long_s, short_s, _ in slo.ALERTS for s in (long_s, short_s)}))


def sel(name: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def escape_template(text: str) -> str:
    """Text shown literally by Prometheus's annotation templates: ``{{`` and ``}}`` quoted."""
    out, i = [], 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in ("{{", "}}"):
            out.append('{{ "' + pair + '" }}')
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def sloth_labels(journey: str, window: str | None = None) -> dict[str, str]:
    labels = {"sloth_id": f"{SERVICE}-{journey}", "sloth_service": SERVICE, "sloth_slo": journey}
    if window is not None:
        labels["sloth_window"] = window
    return labels


def ratio_name(seconds: float) -> str:
    return f"slo:sli_error:ratio_rate{duration(seconds)}"


# --------------------------------------------------------------------------- rules of one journey


def sample_rule(journey: str, metric: str, query: str) -> dict[str, Any]:
    m = mt.BY_NAME[metric]
    expr = f"(\n{query.strip()}\n)\n>= {num(m.low)} <= {num(m.high)}"  # own lines: a # comment ends at its line
    return {"record": SAMPLE, "expr": expr, "labels": {"journey": journey, "metric": metric}}


def mean_rule(journey: str, metric: str, window_s: float) -> dict[str, Any]:
    """Mean of the window's samples per segment: site when the series has one, else context (verify's segment)."""
    r = short_range(window_s)
    parts = []
    for by, where in (("site", 'site!=""'), ("context", 'site="",context!=""')):
        series = f'{SAMPLE}{{journey="{journey}",metric="{metric}",{where}}}[{r}]'
        parts.append(
            f"sum by (journey, {by}) (sum_over_time({series}))\n/ sum by (journey, {by}) (count_over_time({series}))"
        )
    expr = f"(\n{parts[0]}\n)\nor\n(\n{parts[1]}\n)"
    return {"record": MEASURE, "expr": expr, "labels": {"journey": journey, "metric": metric}}


def _zero_filled(journey: str, metric: str) -> str:
    """The window mean of one E-model input, 0 where only another input was measured (verify's bound)."""
    others = [m for m in inputs("mos") if m != metric]
    out = sel(MEASURE, journey=journey, metric=metric)
    for other in others:
        out += f" or on ({SEGMENT}) 0 * {sel(MEASURE, journey=journey, metric=other)}"
    return f"({out})"


def r_factor_rule(journey: str, codec_name: str) -> dict[str, Any]:
    """The E-model's R of the window means (G.107 as :func:`controller.qoe.emodel.voice_quality` computes it)."""
    c = emodel.codec(codec_name)
    delay, jitter, loss = (_zero_filled(journey, m) for m in inputs("mos"))
    d = f"({delay} + on ({SEGMENT}) 2 * {jitter} + {num(emodel.FIXED_DELAY_MS)})"
    knee = num(emodel.D_KNEE)
    id_part = f"(0.024 * {d} + 0.11 * clamp_min({d} - {knee}, 0))"
    ie_eff = f"({num(c.ie)} + {num(95.0 - c.ie)} * {loss} / ({loss} + {num(c.bpl)}))"
    expr = f"{num(emodel.R0)} - {id_part}\n- on ({SEGMENT}) {ie_eff}"
    return {"record": R_FACTOR, "expr": expr, "labels": {"journey": journey, "codec": codec_name}}


def mos_rule(journey: str) -> dict[str, Any]:
    r = f"clamp({sel(R_FACTOR, journey=journey)}, 0, 100)"
    expr = f"1 + 0.035 * {r} + 7e-06 * {r} * ({r} - 60) * (100 - {r})"
    return {"record": MEASURE, "expr": expr, "labels": {"journey": journey, "metric": "mos"}}


def _miss_op(check: CheckSpec) -> str:
    """The comparison that is true when ``check`` misses, with verify's tolerance."""
    if check.op == "<=":
        return f"> bool {num(check.target + TOLERANCE)}"
    if check.op == ">=":
        return f"< bool {num(check.target - TOLERANCE)}"
    raise ValueError(f"no window rule for {check.op} checks")  # pragma: no cover - only DSCP, never primary


def check_rule(journey: str, check: CheckSpec) -> dict[str, Any]:
    value = sel(MEASURE, journey=journey, metric=check.name)
    miss = f"{value} {_miss_op(check)}"
    if check.name == "mos":  # with an input not measured the MOS is an upper bound: it can miss, never meet
        complete = f'{MEASURE}{{journey="{journey}",metric=~"{"|".join(inputs("mos"))}"}}'
        need = len(inputs("mos"))
        expr = f"({miss}) == 1\nor\n(({miss}) and on ({SEGMENT}) count by ({SEGMENT}) ({complete}) == {need})"
    else:
        expr = miss
    return {"record": MISS, "expr": expr, "labels": {"journey": journey, "metric": check.name}}


def error_rule(journey: str, checks: int) -> dict[str, Any]:
    """1: a check missed; 0: all ``checks`` measured and met; absent: no verdict. Sites get their context."""
    miss = sel(MISS, journey=journey)
    verdict = f"(max by ({SEGMENT}) ({miss}) == 1 or 0 * (count by ({SEGMENT}) ({miss}) == {checks}))"
    expr = f"{verdict}\n* on (site) group_left (context) {SITE_INFO}\nor on (journey, site)\n{verdict}"
    return {"record": ERROR, "expr": expr, "labels": {"journey": journey}}


def ratio_rule(journey: str, lookback_s: float, window_s: float) -> dict[str, Any]:
    """Bad over decided windows among the last ``ceil(look-back / window)`` windows, as verify counts them."""
    n = windows_in(lookback_s, window_s)
    sub = f"{sel(ERROR, journey=journey)}[{short_range(n * window_s)}:{duration(window_s)}]"
    return {
        "record": ratio_name(lookback_s),
        "expr": f"sum_over_time({sub})\n/ count_over_time({sub})",
        "labels": sloth_labels(journey, duration(lookback_s)),
    }


def meta_rules(sli: JourneySli) -> list[dict[str, Any]]:
    s = sli.journey.verify
    budget = 1.0 - s.objective_pct / 100.0
    labels = {"journey": sli.name, **sloth_labels(sli.name)}
    ids = sloth_labels(sli.name)
    short = sel(ratio_name(lookbacks()[0]), **ids)
    rules: list[dict[str, Any]] = [
        {"record": "slo:objective:ratio", "expr": f"vector({num(s.objective_pct / 100.0)})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector({num(budget)})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({num(s.period_s / 86400.0)})", "labels": labels},
        {"record": "slo:current_burn_rate:ratio", "expr": f"{short} / {num(budget)}", "labels": ids},
    ]
    for check in sli.checks:
        target_labels = {"journey": sli.name, "metric": check.name, "op": check.op}
        rules.append({"record": TARGET, "expr": f"vector({num(check.target)})", "labels": target_labels})
    return rules


def period_group(sli: JourneySli, interval_s: float) -> dict[str, Any]:
    """The period's ratio and budget, for dashboards: evaluated once a window (a period holds thousands)."""
    s = sli.journey.verify
    budget = 1.0 - s.objective_pct / 100.0
    ids = sloth_labels(sli.name)
    rules = [] if s.period_s in lookbacks() else [ratio_rule(sli.name, s.period_s, s.window_s)]
    rules += [
        {
            "record": "slo:period_burn_rate:ratio",
            "expr": f"{sel(ratio_name(s.period_s), **ids)} / {num(budget)}",
            "labels": ids,
        },
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": f"1 - {sel('slo:period_burn_rate:ratio', **ids)}",
            "labels": ids,
        },
    ]
    return {
        "name": f"qoectl-journey-{sli.name}-period",
        "interval": duration(max(interval_s, s.window_s)),
        "rules": rules,
    }


def _burning(journey: str, long_s: float, short_s: float, threshold: float, budget: float) -> str:
    """Both look-backs burn at least ``threshold`` (verify: ``long_burn >= threshold <= short_burn``)."""
    ids = sloth_labels(journey)
    sides = [
        f"max without (sloth_window) ({sel(ratio_name(span), **ids)} / {num(budget)} >= {num(threshold)})"
        for span in (long_s, short_s)
    ]
    return f"(\n  {sides[0]}\n  and\n  {sides[1]}\n)"


def alert_rules(sli: JourneySli) -> list[dict[str, Any]]:
    s = sli.journey.verify
    budget = 1.0 - s.objective_pct / 100.0
    severities = list(dict.fromkeys(sev for sev, *_ in slo.ALERTS))
    rules = []
    for severity in severities:
        windows = [a for a in slo.ALERTS if a[0] == severity]
        parts = [
            _burning(sli.name, lo, sh, slo.burn_factor(s.period_s, share, lo), budget) for _, lo, sh, share in windows
        ]
        names = ", ".join(
            f"{round(slo.burn_factor(s.period_s, share, lo), 2):g}x over {duration(lo)} and {duration(sh)}"
            for _, lo, sh, share in windows
        )
        rules.append(
            {
                "alert": ALERT,
                "expr": "\nor\n".join(parts),
                "labels": {"journey": sli.name, "severity": severity, "sloth_severity": severity},
                "annotations": _annotations(sli, severity, names),
            }
        )
    return rules


def _annotations(sli: JourneySli, severity: str, names: str) -> dict[str, str]:
    j = sli.journey
    where = "{{ $labels.site }} ({{ $labels.context }})"
    out = {
        "title": f"({severity}) journey {j.name} at {where} burns its error budget too fast",
        "summary": (
            f"Windows of journey {j.name} out of target at {where} burn the error budget at {names} "
            f"(objective {num(j.verify.objective_pct)} % of {duration(j.verify.window_s)} windows over "
            f"{duration(j.verify.period_s)}); qoectl verify reports the same burn-rate {severity} alert."
        ),
    }
    if j.owner:
        out["owner"] = escape_template(j.owner)
    if j.description:
        out["description"] = escape_template(j.description)
    return out


def journey_group(sli: JourneySli, interval: str) -> dict[str, Any]:
    name, win = sli.name, sli.journey.verify.window_s
    rules: list[dict[str, Any]] = [sample_rule(name, m, q) for m, q in sli.sources]
    means = sorted({m for c in sli.checks for m in inputs(c.name)})
    rules += [mean_rule(name, m, win) for m in means]
    if any(c.name == "mos" for c in sli.checks):
        rules += [r_factor_rule(name, sli.codec), mos_rule(name)]
    rules += [check_rule(name, c) for c in sli.checks]
    rules.append(error_rule(name, len(sli.checks)))
    rules += [ratio_rule(name, span, win) for span in lookbacks()]
    rules += meta_rules(sli)
    rules += alert_rules(sli)
    return {"name": f"qoectl-journey-{name}", "interval": interval, "rules": rules}


def sites_group(policy: Policy, interval: str) -> dict[str, Any]:
    """One constant series per site naming its context, joined onto the sites' verdicts."""
    sites = sorted({s.name: s.context for s in policy.sites}.items())
    rules = [
        {"record": SITE_INFO, "expr": "vector(1)", "labels": {"site": site, "context": context}}
        for site, context in sites
    ]
    return {"name": "qoectl-sites", "interval": interval, "rules": rules}


# --------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class RuleFile:
    groups: tuple[dict[str, Any], ...]
    journeys: tuple[str, ...]  # those with rules
    notes: tuple[Note, ...]

    def text(self) -> str:
        header = (
            "# Generated by qoectl export prometheus-rules: the SLOs qoectl verify judges journeys by.\n"
            "# Do not edit: change the policy and export again. See docs/alerting.md.\n"
        )
        return header + yaml.dump({"groups": list(self.groups)}, Dumper=_Dumper, sort_keys=False, width=1_000_000)

    def recorded(self) -> tuple[str, ...]:
        """Every series name the file records, sorted."""
        return tuple(sorted({r["record"] for g in self.groups for r in g["rules"] if "record" in r}))

    def to_json(self) -> dict[str, object]:
        return {"journeys": list(self.journeys), "notes": [n.to_json() for n in self.notes]}


class _Dumper(yaml.SafeDumper):
    """Multi-line PromQL as YAML literal blocks, everything else as the safe dumper writes it; no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def rule_file(build: Build, interval_s: float = 60.0) -> RuleFile:
    """The rules of every journey Prometheus can judge, and notes on the others; deterministic."""
    slis, notes = plan(build)
    interval = duration(interval_s)
    groups = [sites_group(build.policy, interval)]
    for sli in slis:
        groups += [journey_group(sli, interval), period_group(sli, interval_s)]
    return RuleFile(tuple(groups), tuple(s.name for s in slis), notes)


def groups_of(text: str) -> Iterable[dict[str, Any]]:
    """The groups of an exported rule file (for tests and tools)."""
    data = yaml.safe_load(text) or {}
    return list(data.get("groups") or [])
