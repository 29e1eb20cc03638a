"""pytest-bdd steps for policy repositories, in a network engineer's words.

Import them in a ``conftest.py`` (``from controller.testing.bdd_steps import *``)
and write feature files such as::

    Scenario: Voice is protected in every branch
      Given the policies in "policies"
      When they are compiled
      Then every branch router gives voice strict priority
      And no WAN link carries more than 33 % priority traffic

Every step runs the real pipeline (``controller.pipeline.build`` and the real
renderers), never a model of it. Then-steps about plans check the compiled
per-device plan; steps that name a config or a platform check the rendered
text too. Each Then-step fails with a message naming the devices and values
that break the claim, and a claim about "every device ..." fails when it
selects no device at all, so no statement is ever true by accident.

docs/bdd-steps.md documents every step with an example.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

try:
    import pytest
    from pytest_bdd import given, parsers, then, when
except ImportError as exc:  # qoectl itself does not need pytest: the step library is an extra
    raise ImportError(
        f"controller.testing.bdd_steps needs pytest and pytest-bdd ({exc.name} is missing): pip install 'qoectl[bdd]'",
        name=exc.name,
    ) from exc

from controller.errors import Diagnostic, PolicyError, errors_only
from controller.pipeline import Build, build, render_plan
from controller.plan import DevicePlan
from controller.spec.types import DSCP_NAMES, dscp_name
from controller.testing.config_probes import probed_platforms, sla_latency_probe, strict_priority_probe

JOURNEY = r'"?(?P<journey>[A-Za-z0-9][A-Za-z0-9_.-]*)"?'
FILE_MARKER = re.compile(r"^#\s*file:\s*(?P<name>\S+)\s*$")

# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class PolicyRepo:
    """The policy folder a scenario works on; ``scratch`` ones belong to the scenario and may be written."""

    root: Path
    scratch: bool


@dataclass
class Outcome:
    """What the When-step produced: the build (or the errors that stopped it) and rendered configs."""

    repo: PolicyRepo
    build: Build | None
    diagnostics: tuple[Diagnostic, ...]
    _files: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Diagnostic]:
        return errors_only(self.diagnostics)

    def plans(self) -> tuple[DevicePlan, ...]:
        """Every device plan; fails the step when the policies did not compile."""
        if self.build is None or self.errors:
            _fail("the policies did not compile, so there are no device plans:\n" + _listing(self.errors))
        assert self.build is not None
        return self.build.plans

    def files(self, plan: DevicePlan) -> dict[str, str]:
        """The rendered configs of one device (rendered once, on first use)."""
        if plan.device not in self._files:
            self._files[plan.device] = render_plan(plan)
        return self._files[plan.device]


def _fail(message: str) -> None:
    __tracebackhide__ = True
    raise AssertionError(message)


def _listing(diags: list[Diagnostic] | tuple[Diagnostic, ...], limit: int = 20) -> str:
    lines = [f"  {d.format()}" for d in diags[:limit]]
    if len(diags) > limit:
        lines.append(f"  ... and {len(diags) - limit} more")
    return "\n".join(lines) or "  (none)"


def _problems(problems: list[str], claim: str) -> None:
    __tracebackhide__ = True
    if problems:
        shown = problems[:25] + ([f"... and {len(problems) - 25} more"] if len(problems) > 25 else [])
        _fail(f"not true that {claim}:\n" + "\n".join(f"  - {p}" for p in shown))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def qoectl_example_policies(request: pytest.FixtureRequest) -> Path:
    """What "the example policies" means: ``policies/`` beside the pytest rootdir (override to change it)."""
    return Path(request.config.rootpath) / "policies"


@pytest.fixture
def qoectl_repo(tmp_path: Path) -> PolicyRepo:
    """An empty scratch repository, until a Given-step names one."""
    root = tmp_path / "policies"
    root.mkdir(exist_ok=True)
    return PolicyRepo(root, scratch=True)


def _scratch_dir(tmp_path: Path) -> Path:
    n = 1
    while (tmp_path / f"repo-{n}").exists():
        n += 1
    return tmp_path / f"repo-{n}"


def _safe_name(name: str) -> PurePosixPath:
    """A relative ``*.yaml`` path inside the repository (never absolute, never ``..``)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not name or path.suffix not in (".yaml", ".yml"):
        _fail(f"policy file name {name!r} must be a relative path ending in .yaml or .yml, without '..'")
    return path


# --------------------------------------------------------------------------- Given


@given("the example policies", target_fixture="qoectl_repo")
def given_example_policies(qoectl_example_policies: Path) -> PolicyRepo:
    if not qoectl_example_policies.is_dir():
        _fail(f"the example policies folder {qoectl_example_policies} does not exist")
    return PolicyRepo(qoectl_example_policies, scratch=False)


@given(parsers.parse('the policies in "{path}"'), target_fixture="qoectl_repo")
def given_policies_in(path: str, request: pytest.FixtureRequest) -> PolicyRepo:
    root = Path(path) if Path(path).is_absolute() else Path(request.config.rootpath) / path
    if not root.exists():
        _fail(f"policy folder {root} does not exist")
    return PolicyRepo(root, scratch=False)


@given("a policy repository with:", target_fixture="qoectl_repo")
def given_repository_with(docstring: str, tmp_path: Path) -> PolicyRepo:
    """Files separated by ``# file: name.yaml`` lines; without a marker everything is ``policy.yaml``."""
    root = _scratch_dir(tmp_path)
    root.mkdir(parents=True)
    files: dict[PurePosixPath, list[str]] = {}
    current = PurePosixPath("policy.yaml")
    for line in docstring.splitlines():
        marker = FILE_MARKER.match(line)
        if marker:
            current = _safe_name(marker.group("name"))
            files.setdefault(current, [])
            continue
        files.setdefault(current, []).append(line)
    for name, lines in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return PolicyRepo(root, scratch=True)


@given(parsers.parse('a policy file "{name}" with:'), target_fixture="qoectl_repo")
def given_policy_file(name: str, docstring: str, qoectl_repo: PolicyRepo, tmp_path: Path) -> PolicyRepo:
    """Add (or replace) one file; a repository the scenario does not own is copied first, never written."""
    rel = _safe_name(name)
    repo = qoectl_repo
    if not repo.scratch:
        copy = _scratch_dir(tmp_path)
        if repo.root.is_dir():
            shutil.copytree(repo.root, copy)
        else:
            copy.mkdir(parents=True)
            shutil.copy2(repo.root, copy / repo.root.name)
        repo = PolicyRepo(copy, scratch=True)
    target = repo.root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(docstring + "\n", encoding="utf-8")
    return repo


# --------------------------------------------------------------------------- When


def _run(repo: PolicyRepo, render: bool) -> Outcome:
    try:
        result = build(repo.root)
    except PolicyError as exc:
        return Outcome(repo, None, tuple(exc.diagnostics))
    outcome = Outcome(repo, result, result.diagnostics)
    if render and result.ok:
        for plan in result.plans:
            files = outcome.files(plan)
            if not files or not all(text.strip() for text in files.values()):
                _fail(f"{plan.device} ({plan.platform}) rendered an empty config: {sorted(files)}")
    return outcome


@when("they are validated", target_fixture="qoectl_outcome")
def when_validated(qoectl_repo: PolicyRepo) -> Outcome:
    return _run(qoectl_repo, render=False)


@when("they are compiled", target_fixture="qoectl_outcome")
def when_compiled(qoectl_repo: PolicyRepo) -> Outcome:
    return _run(qoectl_repo, render=False)


@when("they are rendered for every platform", target_fixture="qoectl_outcome")
def when_rendered(qoectl_repo: PolicyRepo) -> Outcome:
    return _run(qoectl_repo, render=True)


# --------------------------------------------------------------------------- Then: validation


@then("validation succeeds")
def then_validation_succeeds(qoectl_outcome: Outcome) -> None:
    if qoectl_outcome.errors:
        _fail(f"validation failed with {len(qoectl_outcome.errors)} error(s):\n" + _listing(qoectl_outcome.errors))


@then(parsers.parse('validation fails with "{text}"'))
def then_validation_fails_with(qoectl_outcome: Outcome, text: str) -> None:
    errors = qoectl_outcome.errors
    if not errors:
        _fail(f'validation succeeded, but it should have failed with "{text}"')
    if not any(text in d.format() for d in errors):
        _fail(f'no error mentions "{text}"; the errors were:\n' + _listing(errors))


def _same_file(diag: Diagnostic, repo: PolicyRepo, name: str) -> bool:
    if not diag.location.file:
        return False
    return os.path.realpath(diag.location.file) == os.path.realpath(repo.root / name)


def _points_at(outcome: Outcome, name: str, line: int, field_: str | None) -> None:
    _safe_name(name)
    errors = outcome.errors
    here = [d for d in errors if _same_file(d, outcome.repo, name) and d.location.line == line]
    if field_ is not None:
        here = [d for d in here if d.field == field_]
    if not here:
        want = f"{name} line {line}" + (f", field {field_}" if field_ else "")
        _fail(f"no error points at {want}; the errors were:\n" + _listing(errors))


@then(parsers.parse('the error points at "{name}" line {line:d}'))
def then_error_points_at(qoectl_outcome: Outcome, name: str, line: int) -> None:
    _points_at(qoectl_outcome, name, line, None)


@then(parsers.parse('the error points at "{name}" line {line:d}, field "{field_name}"'))
def then_error_points_at_field(qoectl_outcome: Outcome, name: str, line: int, field_name: str) -> None:
    _points_at(qoectl_outcome, name, line, field_name)


@then(parsers.parse("there are {count:d} device plans"))
def then_device_count(qoectl_outcome: Outcome, count: int) -> None:
    plans = qoectl_outcome.plans()
    if len(plans) != count:
        _fail(f"there are {len(plans)} device plans, not {count}: {', '.join(p.device for p in plans)}")


# --------------------------------------------------------------------------- Then: plans

_SELECTORS: tuple[tuple[re.Pattern[str], str, Callable[[DevicePlan, str], bool]], ...] = (
    (re.compile(r"every device"), "every device", lambda p, v: True),
    (re.compile(r'every device tagged "(?P<v>[^"]+)"'), "tag", lambda p, v: v in p.tags),
    (re.compile(r'every device at site "(?P<v>[^"]+)"'), "site", lambda p, v: p.site == v),
    (re.compile(r'every device in context "(?P<v>[^"]+)"'), "context", lambda p, v: p.context == v),
    (re.compile(r'every device on platform "(?P<v>[^"]+)"'), "platform", lambda p, v: p.platform == v),
    (re.compile(r"every (?P<v>[A-Za-z0-9_.-]+) (?:router|device|edge)s?"), "context", lambda p, v: p.context == v),
)
SELECTOR_FORMS = (
    'every device; every device tagged "TAG"; every device at site "SITE"; every device in context "CONTEXT"; '
    'every device on platform "PLATFORM"; every CONTEXT router (e.g. every branch router)'
)


def select(plans: tuple[DevicePlan, ...], phrase: str) -> list[DevicePlan]:
    """The device plans a phrase such as ``every branch router`` names; never empty."""
    for pattern, kind, keep in _SELECTORS:
        m = pattern.fullmatch(phrase.strip())
        if m is None:
            continue
        value = m.groupdict().get("v") or ""
        chosen = [p for p in plans if keep(p, value)]
        if not chosen:
            known = {
                "tag": sorted({t for p in plans for t in p.tags}),
                "site": sorted({p.site for p in plans}),
                "context": sorted({p.context for p in plans}),
                "platform": sorted({p.platform for p in plans}),
            }.get(kind, [])
            _fail(f"'{phrase}' selects no device (known {kind}s: {', '.join(known) or 'none'})")
        return chosen
    _fail(f"cannot read the device selection '{phrase}'; write one of: {SELECTOR_FORMS}")
    return []


def strict_priority_problems(plan: DevicePlan, journey: str) -> list[str]:
    """Why ``journey`` is not strict priority in ``plan`` (empty when it is, on every queued WAN link)."""
    rule = next((r for r in plan.markings if r.journey == journey), None)
    if rule is None:
        return [f"{plan.device} does not carry journey {journey} (it is out of the journey's scope)"]
    cls = plan.qos_class(rule.class_name)
    if not cls.strict:
        return [f"{plan.device} puts {journey} in class {cls.name} (queue {cls.queue}), which is not strict priority"]
    out = []
    for iface in plan.wan_interfaces:
        if not iface.link_kbps:
            continue
        alloc = iface.allocation(cls.name)
        if alloc is None or alloc.police_kbps is None:
            out.append(f"{plan.device} {iface.name}: strict class {cls.name} has no policed priority allocation")
    return out


@then(parsers.re(rf"(?P<selector>every .+?) gives {JOURNEY} strict priority"))
def then_gives_strict_priority(qoectl_outcome: Outcome, selector: str, journey: str) -> None:
    plans = select(qoectl_outcome.plans(), selector)
    problems = [p for plan in plans for p in strict_priority_problems(plan, journey)]
    _problems(problems, f"{selector} gives {journey} strict priority")


@then(parsers.re(rf"{JOURNEY} is not carried by (?P<selector>every .+)"))
def then_not_carried(qoectl_outcome: Outcome, journey: str, selector: str) -> None:
    plans = select(qoectl_outcome.plans(), selector)
    problems = [f"{p.device} carries {journey}" for p in plans if any(r.journey == journey for r in p.markings)]
    _problems(problems, f"{journey} is not carried by {selector}")


@then(
    parsers.re(
        r"no WAN link (?:of (?P<selector>every .+?) )?carries more than (?P<pct>\d+(?:\.\d+)?) ?% priority traffic"
    )
)
def then_priority_share(qoectl_outcome: Outcome, selector: str | None, pct: str) -> None:
    """Strict-priority traffic per link is what its policers let through, as a share of the usable link rate."""
    limit = float(pct)
    plans = select(qoectl_outcome.plans(), selector or "every device")
    problems, links = [], 0
    for plan in plans:
        strict = {c.name for c in plan.classes if c.strict}
        for iface in plan.wan_interfaces:
            if not iface.link_kbps:
                continue
            links += 1
            kbps = sum(a.police_kbps or a.guaranteed_kbps for a in iface.allocations if a.class_name in strict)
            share = 100.0 * kbps / iface.link_kbps
            if share > limit + 1e-9:
                problems.append(
                    f"{plan.device} {iface.name}: {kbps} of {iface.link_kbps} kbps = {share:.1f} % priority traffic"
                )
    if links == 0:
        problems.append(f"{selector or 'every device'} has no WAN link with a bandwidth to check")
    _problems(problems, f"no WAN link carries more than {limit:g} % priority traffic")


def parse_dscp(text: str) -> int:
    key = text.strip().lower()
    if key in DSCP_NAMES:
        return DSCP_NAMES[key]
    if key.isdigit() and 0 <= int(key) <= 63:
        return int(key)
    _fail(f"unknown DSCP {text!r}: use ef, af11-af43, cs0-cs7, le, default or a number 0-63")
    return -1


@then(parsers.re(rf'journey {JOURNEY} is marked "?(?P<dscp>[A-Za-z0-9]+)"? on (?P<selector>every .+)'))
def then_marked(qoectl_outcome: Outcome, journey: str, dscp: str, selector: str) -> None:
    want = parse_dscp(dscp)
    problems = []
    for plan in select(qoectl_outcome.plans(), selector):
        rule = next((r for r in plan.markings if r.journey == journey), None)
        if rule is None:
            problems.append(f"{plan.device} does not mark {journey} at all (out of its scope)")
        elif rule.dscp != want:
            problems.append(f"{plan.device} marks {journey} {rule.dscp_name} ({rule.dscp}), not {dscp_name(want)}")
    _problems(problems, f"journey {journey} is marked {dscp} on {selector}")


_BUDGETS = {"one-way delay": ("one_way_delay_ms", "ms"), "jitter": ("jitter_ms", "ms"), "loss": ("loss_pct", "%")}


@then(
    parsers.re(
        r"the (?P<metric>one-way delay|jitter|loss) budget for "
        + JOURNEY
        + r" is at most (?P<value>\d+(?:\.\d+)?) ?(?P<unit>ms|%)"
    )
)
def then_budget_at_most(qoectl_outcome: Outcome, metric: str, journey: str, value: str, unit: str) -> None:
    attr, right_unit = _BUDGETS[metric]
    if unit != right_unit:
        _fail(f"the {metric} budget is in {right_unit}, not {unit}")
    if qoectl_outcome.build is None:
        _fail("the policies could not be read:\n" + _listing(qoectl_outcome.errors))
    assert qoectl_outcome.build is not None
    budget = qoectl_outcome.build.budgets.get(journey)
    if budget is None:
        known = ", ".join(sorted(qoectl_outcome.build.budgets))
        related = [d for d in qoectl_outcome.errors if journey in d.format()]
        _fail(f"journey {journey} has no budget (known: {known})" + ("\n" + _listing(related) if related else ""))
    assert budget is not None
    got = getattr(budget, attr)
    if got is None:
        _fail(f"journey {journey} has no {metric} budget (its target does not bound it)")
    if got > float(value) + 1e-9:
        _fail(f"the {metric} budget for {journey} is {got:g} {unit}, more than {value} {unit}")


# --------------------------------------------------------------------------- Then: rendered configs


def _device_plan(outcome: Outcome, platform: str, device: str) -> DevicePlan:
    plans = outcome.plans()
    plan = next((p for p in plans if p.device == device), None)
    if plan is None:
        _fail(f"no device {device}; devices: {', '.join(p.device for p in plans)}")
    assert plan is not None
    if plan.platform != platform:
        _fail(f"{device} is a {plan.platform} device, not {platform}")
    return plan


@then(parsers.parse('the "{platform}" config of "{device}" contains "{text}"'))
def then_config_contains(qoectl_outcome: Outcome, platform: str, device: str, text: str) -> None:
    files = qoectl_outcome.files(_device_plan(qoectl_outcome, platform, device))
    if not any(text in body for body in files.values()):
        lines = [line.strip() for body in files.values() for line in body.splitlines()]
        close = difflib.get_close_matches(text.strip(), lines, n=3, cutoff=0.5)
        hint = ("; closest lines: " + " | ".join(close)) if close else ""
        _fail(f"the {platform} config of {device} ({', '.join(sorted(files))}) does not contain {text!r}{hint}")


@then(parsers.parse('the "{platform}" config of "{device}" does not contain "{text}"'))
def then_config_lacks(qoectl_outcome: Outcome, platform: str, device: str, text: str) -> None:
    files = qoectl_outcome.files(_device_plan(qoectl_outcome, platform, device))
    hits = [f"{name}: {line.strip()}" for name, body in files.items() for line in body.splitlines() if text in line]
    _problems(hits, f"the {platform} config of {device} does not contain {text!r}")


@then(parsers.re(rf"{JOURNEY} is strict priority on every platform"))
def then_strict_on_every_platform(qoectl_outcome: Outcome, journey: str) -> None:
    """For each platform in the fleet: in the plan AND in the rendered text of every device carrying the journey."""
    plans = qoectl_outcome.plans()
    problems: list[str] = []
    for platform in sorted({p.platform for p in plans}):
        carrying = [p for p in plans if p.platform == platform and any(r.journey == journey for r in p.markings)]
        if not carrying:
            problems.append(f"no {platform} device carries {journey}")
            continue
        probe = strict_priority_probe(platform)
        if probe is None:
            problems.append(
                f"cannot read {platform} configs: no parser for it "
                f"(have: {', '.join(probed_platforms())}); "
                "a registered platform brings one (controller/platforms/<name>/parser.py)"
            )
            continue
        for plan in carrying:
            in_plan = strict_priority_problems(plan, journey)
            problems += in_plan
            if in_plan:
                continue
            rule = next(r for r in plan.markings if r.journey == journey)
            cls = plan.qos_class(rule.class_name)
            problems += [
                f"{plan.device} ({platform}) config: {p}" for p in probe(qoectl_outcome.files(plan), plan, cls)
            ]
    _problems(problems, f"{journey} is strict priority on every platform")


@then(parsers.re(rf"the SD-WAN SLA class for {JOURNEY} allows no more than (?P<ms>[0-9.]+) ms latency"))
def then_sla_latency_at_most(qoectl_outcome: Outcome, journey: str, ms: str) -> None:
    """On every SD-WAN device carrying the journey: the plan's one-way SLA budget, and the threshold the
    rendered config states (round trip on Cisco SD-WAN and FortiOS, so halved), are at most ``ms``."""
    from controller.render._sdwan import one_way_ms

    limit = float(ms)
    problems: list[str] = []
    checked = 0
    for plan in qoectl_outcome.plans():
        sla = next((s for s in plan.sla_classes if journey in s.journeys), None)
        if sla is None:
            continue
        checked += 1
        if sla.latency_ms is None or sla.latency_ms > limit:
            problems.append(f"{plan.device}: plan SLA latency {sla.latency_ms} ms one-way")
        probe = sla_latency_probe(plan.platform)
        if probe is None:
            problems.append(f"{plan.device}: no SLA probe for platform {plan.platform}, cannot read the config back")
            continue
        rendered = probe(qoectl_outcome.files(plan), plan, sla.name)
        if rendered is None:
            problems.append(f"{plan.device}: the {plan.platform} config states no latency threshold for {journey}")
        elif one_way_ms(rendered) > limit:
            problems.append(
                f"{plan.device}: {plan.platform} threshold {rendered:g} ms round trip = "
                f"{one_way_ms(rendered):g} ms one-way"
            )
    if checked == 0:
        _fail(f"no SD-WAN device has an SLA class for {journey}")
    _problems(problems, f"the SD-WAN SLA class for {journey} allows no more than {limit:g} ms latency")
