"""Load a policy repository: YAML files -> spec documents -> internal model.

Every problem in every file is collected and reported at once, each pointing
at the file, line and field the user wrote, with a hint of what would be right.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import sys
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller import model as m
from controller.errors import Diagnostic, Location, PolicyError, sort_diagnostics
from controller.load.yamlsrc import YamlDocument, dotted, load_documents, printable
from controller.model.catalogue import RFC4594
from controller.parallel import ordered_map
from controller.spec import v1
from controller.spec.types import ENV_PATTERN, FILE_PATTERN, HOST_PATTERN, INTERFACE_PATTERN, NAME_PATTERN, Name

SUPPORTED_VERSIONS = (v1.API_VERSION,)
PATTERN_HINTS = {
    NAME_PATTERN: "use only letters, digits, '-', '_' and '.', starting with a letter or digit (max 63)",
    INTERFACE_PATTERN: "use the interface name as the device spells it, e.g. GigabitEthernet0/0/1 or eth0",
    HOST_PATTERN: "use an IP address or a DNS name",
    ENV_PATTERN: "give the NAME of an environment variable (letters, digits, '_'), never the secret",
    FILE_PATTERN: "give a plain file path",
    v1.TIME_PATTERN: "give a UTC time to the second, quoted, e.g. '2025-05-01T10:00:00Z'",
}


@dataclass(frozen=True, slots=True)
class SpecDoc:
    """A schema-valid document with its YAML source."""

    source: YamlDocument
    spec: Any


def display_path(path: FsPath) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive on Windows
        return str(path)


def policy_files(root: FsPath) -> list[FsPath]:
    """The YAML files of a policy folder, sorted; hidden files and folders (.git, .github ...) are skipped,
    so a repository root with CI workflows or pre-commit settings can be validated as it is."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix in (".yaml", ".yml")
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    )


# Below this many bytes of YAML, a policy is parsed in this process: starting workers costs more.
MIN_PARALLEL_BYTES = 2_000_000


def read_text(path: FsPath) -> tuple[str | None, list[Diagnostic]]:
    """A policy file's text (None, with the problem, when it cannot be read)."""
    try:
        return path.read_text(encoding="utf-8"), []
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Diagnostic(Location(display_path(path)), "", f"cannot read file: {exc}", "save it as UTF-8 text")]


def _read_file(path: FsPath) -> tuple[list[YamlDocument], list[Diagnostic]]:
    text, problems = read_text(path)
    return ([], problems) if text is None else load_documents(text, display_path(path))


def _size(path: FsPath) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_files(root: FsPath, jobs: int = 1) -> Iterator[tuple[list[YamlDocument], list[Diagnostic]]]:
    """The documents of each policy file, in file order, and the problems reading it, one file at a time.

    With ``jobs`` > 1 and at least ``MIN_PARALLEL_BYTES`` of YAML, files are
    parsed in that many forked workers; the result is the same either way.
    """
    if not root.exists():
        raise PolicyError([Diagnostic(Location(str(root)), "", "no such file or directory", "give a policy folder")])
    paths = policy_files(root)
    if jobs > 1 and sum(_size(p) for p in paths) < MIN_PARALLEL_BYTES:
        jobs = 1
    return ordered_map(_read_file, paths, jobs)


def read_documents(root: FsPath, jobs: int = 1) -> tuple[list[YamlDocument], list[Diagnostic]]:
    """Every document of every policy file, in file order, and the problems reading them (:func:`read_files`)."""
    docs: list[YamlDocument] = []
    problems: list[Diagnostic] = []
    for file_docs, file_problems in read_files(root, jobs):
        docs.extend(file_docs)
        problems.extend(file_problems)
    return docs, problems


# --------------------------------------------------------------------------- schema


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """Find the pydantic model inside ``X | None``, ``list[X]``, ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None:
        return None
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _unwrap_model(args[0])
    if origin in (list, tuple, typing.Union, types.UnionType, dict):
        for arg in args:
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = root
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _unwrap_model(info.annotation)
    return current


def _hint_for(error: Any, root: type[BaseModel]) -> tuple[str, str]:
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        unknown = printable(str(loc[-1]))
        return f"unknown field '{unknown}'", hint + (f"allowed here: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return "required field is missing", f"add '{loc[-1]}'"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return f"invalid value {error['input']!r}", PATTERN_HINTS.get(pattern, f"must match {pattern}")
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    hint = str(getattr(error.get("ctx", {}).get("error"), "hint", ""))
    if kind == "literal_error":
        hint = "use " + str(error.get("ctx", {}).get("expected", "one of the listed values"))
    elif kind in ("int_type", "float_type", "bool_type", "string_type"):
        hint = f"got {type(error['input']).__name__} {error['input']!r}; write it without quotes or fix the value"
    elif kind.startswith(("greater", "less")):
        hint = "change the value to fit the range"
    return message, hint


# Fields where a mistaken value may well be a secret (a password pasted instead of the variable's name,
# a private key instead of its path): diagnostics there never repeat the value, as they end up in CI logs.
SECRET_FIELDS = frozenset({"credentials"})


def _without_value(error: Any, message: str, hint: str) -> tuple[str, str]:
    if error["type"] in ("extra_forbidden", "missing", "literal_error", "value_error"):
        # These name a key, the allowed values, or a rule of ours (model validators): never the value given.
        return message, hint
    pattern = error.get("ctx", {}).get("pattern", "")
    return (
        "invalid value (not shown: it may be a secret)",
        PATTERN_HINTS.get(pattern, "give the name of an environment variable or a file path, never the secret"),
    )


def _schema_problems(doc: YamlDocument, model: type[BaseModel], exc: ValidationError) -> list[Diagnostic]:
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if isinstance(p, int | str))
        message, hint = _hint_for(error, model)
        if SECRET_FIELDS & {str(p) for p in loc}:
            message, hint = _without_value(error, message, hint)
        out.append(Diagnostic(doc.locate(loc), dotted(loc), message, hint))
    return out


def check_schema(docs: Iterable[YamlDocument]) -> tuple[list[SpecDoc], list[Diagnostic]]:
    valid: list[SpecDoc] = []
    problems: list[Diagnostic] = []
    for doc in docs:
        data = doc.data
        if not isinstance(data, dict):
            problems.append(
                Diagnostic(
                    doc.locate(()), "", "a policy document must be a mapping", "start with 'apiVersion: qoectl/v1'"
                )
            )
            continue
        version, kind = data.get("apiVersion"), data.get("kind")
        if version not in SUPPORTED_VERSIONS:
            problems.append(
                Diagnostic(
                    doc.locate(("apiVersion",)),
                    "apiVersion",
                    f"unsupported apiVersion {version!r}" if version is not None else "apiVersion is missing",
                    f"use one of: {', '.join(SUPPORTED_VERSIONS)}",
                )
            )
            continue
        model = v1.DOC_MODELS.get(str(kind))
        if model is None:
            close = difflib.get_close_matches(str(kind), list(v1.DOC_MODELS), n=1)
            problems.append(
                Diagnostic(
                    doc.locate(("kind",)),
                    "kind",
                    f"unknown kind {kind!r}" if kind is not None else "kind is missing",
                    (f"did you mean '{close[0]}'? " if close else "") + "kinds: " + ", ".join(v1.DOC_MODELS),
                )
            )
            continue
        try:
            valid.append(SpecDoc(doc, model.model_validate(data)))
        except ValidationError as exc:
            problems.extend(_schema_problems(doc, model, exc))
    return valid, problems


# --------------------------------------------------------------------------- conversion to the internal model


def _match(spec: v1.TrafficMatch) -> m.Match:
    return m.Match(
        protocol=spec.protocol,
        source_ports=tuple(spec.source_ports),
        destination_ports=tuple(spec.destination_ports),
        source_prefixes=tuple(str(p) for p in spec.source_prefixes),
        destination_prefixes=tuple(str(p) for p in spec.destination_prefixes),
        dscp=spec.dscp,
    )


def _target(spec: v1.Target) -> m.Target:
    if spec.voice is not None:
        t = spec.voice
        return m.VoiceTarget(t.codec, t.mos, t.one_way_delay_ms, t.jitter_ms, t.loss_pct)
    if spec.video is not None:
        v = spec.video
        return m.VideoTarget(
            v.mode, v.bitrate_kbps, v.startup_s, v.rebuffering_pct, v.one_way_delay_ms, v.jitter_ms, v.loss_pct
        )
    if spec.interactive is not None:
        i = spec.interactive
        return m.InteractiveTarget(
            i.apdex_t_ms, i.apdex, i.response_time_ms, i.error_rate_pct, i.round_trips, i.network_share
        )
    assert spec.bulk is not None
    return m.BulkTarget(spec.bulk.min_throughput_kbps, spec.bulk.scavenger)


def _verify(spec: v1.VerifySpec) -> m.VerifySettings:
    w = spec.weights
    return m.VerifySettings(
        window_s=v1.duration_seconds(spec.window),
        objective_pct=spec.objective_pct,
        period_s=v1.duration_seconds(spec.period),
        queries=tuple(sorted(spec.queries.items())),
        weights=m.CompositeWeights(w.objective, w.survey_mos, w.csat, w.nps),
        min_responses=spec.min_responses,
        errors_frustrated=spec.errors_frustrated,
    )


def _journey(doc: SpecDoc) -> m.Journey:
    spec: v1.JourneyDoc = doc.spec
    s = spec.spec
    return m.Journey(
        name=spec.metadata.name,
        owner=spec.metadata.owner,
        description=spec.metadata.description,
        application=s.traffic.application,
        category=s.traffic.category,
        matches=tuple(_match(x) for x in s.traffic.match),
        target=_target(s.target),
        priority=s.priority,
        bandwidth=m.Bandwidth(s.bandwidth.per_flow_kbps, s.bandwidth.concurrent_flows, s.bandwidth.share_pct),
        sites=tuple(s.scope.sites),
        device_tags=tuple(s.scope.device_tags),
        contexts=tuple(s.scope.contexts),
        service_class=s.service_class,
        sdwan_strict=s.sdwan.strict,
        preferred_transports=tuple(s.sdwan.preferred_transports),
        origin=m.Origin(doc.source, ()),
        verify=_verify(s.verify),
        loop=m.LoopLimits(s.loop.max_kbps, s.loop.min_kbps, s.loop.strict_priority),
    )


class _LoadPart(BaseModel):
    """What a journey puts on a link: checked with the schema's own models, anything else ignored."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    target: v1.Target
    priority: v1.Priority = "normal"
    bandwidth: v1.Bandwidth
    scope: v1.Scope = Field(default_factory=v1.Scope)
    service_class: Name | None = None


class _NamePart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    name: Name


def _unchecked_journey(doc: YamlDocument) -> m.Journey | None:
    """A Journey document that failed its schema, rebuilt from the parts that pass: its name, target, priority,
    bandwidth, scope and service class (no traffic). None when any of those fails too.

    Such a journey is left out of everything except link totals (``Policy.unchecked_journeys``): an error
    elsewhere in its document does not take its bandwidth off the links it will load once fixed.
    """
    data = doc.data
    if not isinstance(data, dict) or data.get("kind") != "Journey" or data.get("apiVersion") not in SUPPORTED_VERSIONS:
        return None
    try:
        meta = _NamePart.model_validate(data.get("metadata"))
        part = _LoadPart.model_validate(data.get("spec"))
    except ValidationError:
        return None
    b = part.bandwidth
    return m.Journey(
        name=meta.name,
        owner=None,
        description=None,
        application=None,
        category=None,
        matches=(),
        target=_target(part.target),
        priority=part.priority,
        bandwidth=m.Bandwidth(b.per_flow_kbps, b.concurrent_flows, b.share_pct),
        sites=tuple(part.scope.sites),
        device_tags=tuple(part.scope.device_tags),
        contexts=tuple(part.scope.contexts),
        service_class=part.service_class,
        sdwan_strict=False,
        preferred_transports=(),
        origin=m.Origin(doc, ()),
    )


def value_digest(value: Any) -> bytes:
    """The SHA-256 of a YAML value's ``repr`` (the same text parses to the same values in the same order)."""
    return hashlib.sha256(repr(value).encode()).digest()


def _slim(doc: YamlDocument, digests: bool = True) -> YamlDocument:
    """An Inventory document with each of its sites and devices replaced by :func:`value_digest` of it
    (None without ``digests``: when there is no plan cache, nothing reads them).

    The model's objects point at this document, not at the YAML read: its
    values are several times the model's memory in a large fleet, and after the
    model is built only the plan cache's fingerprints read a site or device
    back, as its digest. Positions are the same (they come from the file's text).
    """
    data, spec = doc.data, doc.data["spec"]
    slim: Callable[[Any], bytes | None] = value_digest if digests else _nothing
    kept = {k: ([slim(v) for v in spec[k]] if k in ("sites", "devices") else v) for k, v in spec.items()}
    return YamlDocument(doc.file, doc.index, {**data, "spec": kept}, doc.positions)


def _nothing(value: Any) -> None:
    return None


def _inventory(doc: SpecDoc, src: YamlDocument) -> tuple[list[m.Site], list[m.Transport], list[m.Device]]:
    spec: v1.InventorySpec = doc.spec.spec
    sites = [
        m.Site(s.name, s.context, s.region, s.sdwan_site_id, m.Origin(src, ("spec", "sites", i)))
        for i, s in enumerate(spec.sites)
    ]
    transports = [
        m.Transport(
            t.name,
            t.base_delay_ms,
            t.jitter_ms,
            t.loss_pct,
            t.metered,
            t.cost,
            m.Origin(src, ("spec", "transports", i)),
        )
        for i, t in enumerate(spec.transports)
    ]
    devices = []
    # Values most devices repeat (interface names, roles, platforms, sites, credentials) kept once each, not
    # once per device: a large fleet's model is mostly its strings.
    shared = sys.intern
    credentials: dict[tuple[Any, ...], m.Credentials] = {}
    for i, d in enumerate(spec.devices):
        dpath = ("spec", "devices", i)
        interfaces = tuple(
            m.Interface(
                shared(f.name),
                "wan" if f.role == "wan" else "lan",  # the constants, not one string per interface
                f.bandwidth_kbps,
                f.port_speed_kbps,
                f.transport and shared(f.transport),
                f.base_delay_ms,
                f.trust_dscp,
                f.vpn,
                m.Origin(src, dpath + ("interfaces", k)),
                f.min_kbps,
                f.max_kbps,
                None if f.gateway is None else str(f.gateway),
            )
            for k, f in enumerate(d.interfaces)
        )
        c = d.credentials
        key = (c.username_env, c.password_env, c.key_file, c.become, c.become_password_env)
        creds = credentials.get(key) or credentials.setdefault(key, m.Credentials(*key))
        devices.append(
            m.Device(
                d.name,
                shared(d.platform),
                d.host,
                d.port,
                shared(d.site),
                tuple(shared(t) for t in d.tags),
                creds,
                interfaces,
                tuple(shared(f) for f in d.features),
                m.Origin(src, dpath),
            )
        )
    return sites, transports, devices


def _change(spec: v1.Adjustment) -> m.Change:
    if spec.shaper is not None:
        return m.ShaperChange(spec.shaper.device, spec.shaper.interface, spec.shaper.kbps)
    if spec.bandwidth is not None:
        return m.BandwidthChange(spec.bandwidth.journey, spec.bandwidth.device, spec.bandwidth.kbps)
    if spec.strict_priority is not None:
        return m.StrictPriorityChange(spec.strict_priority.journey)
    if spec.path is not None:
        return m.PathChange(spec.path.journey, spec.path.device, spec.path.transport)
    assert spec.marking is not None
    return m.MarkingChange(spec.marking.journey, spec.marking.device)


def _adjustments(doc: SpecDoc) -> list[m.Adjustment]:
    spec: v1.AdjustmentsDoc = doc.spec
    return [
        m.Adjustment(
            change=_change(a),
            reason=a.reason,
            measurements=tuple(a.measurements.items()),
            time=a.time,
            document=spec.metadata.name,
            origin=m.Origin(doc.source, ("spec", "entries", i)),
        )
        for i, a in enumerate(spec.spec.entries)
    ]


def _classes(docs: list[SpecDoc]) -> tuple[tuple[m.ServiceClass, ...], list[Diagnostic]]:
    by_name = {c.name: c for c in RFC4594}
    order = [c.name for c in RFC4594]
    problems: list[Diagnostic] = []
    for doc in docs:
        spec: v1.ServiceClassesSpec = doc.spec.spec
        for i, c in enumerate(spec.classes):
            origin = m.Origin(doc.source, ("spec", "classes", i))
            if c.name not in by_name:
                order.append(c.name)
            elif by_name[c.name].origin.doc is not None:
                problems.append(
                    Diagnostic(
                        origin.at("name"),
                        origin.field("name"),
                        f"duplicate service class name '{c.name}'",
                        "define each class once",
                        related=(by_name[c.name].origin.at("name"),),
                    )
                )
                continue
            by_name[c.name] = m.ServiceClass(
                name=c.name,
                dscps=tuple(dict.fromkeys(c.dscp)),
                strict_priority=c.strict_priority,
                aqm=c.aqm,
                fair_queue=c.fair_queue,
                queue_depth=c.queue_depth,
                scavenger=c.scavenger,
                description=c.description or "",
                origin=origin,
            )
    # Catalogue classes keep the catalogue's order; added classes follow sorted by name, so queue numbers
    # depend on what the classes are, not on which file defines them.
    builtin = len(RFC4594)
    return tuple(by_name[n] for n in order[:builtin] + sorted(order[builtin:])), problems


def _settings(docs: list[SpecDoc]) -> m.Settings:
    if not docs:
        return m.Settings()
    doc = docs[-1]
    s: v1.SettingsSpec = doc.spec.spec
    return m.Settings(
        priority_cap_pct=s.priority_cap_pct,
        guaranteed_cap_pct=s.guaranteed_cap_pct,
        default_class_min_pct=s.default_class_min_pct,
        voice_split=m.VoiceSplit(s.voice_split.delay_share, s.voice_split.jitter_fraction),
        origin=m.Origin(doc.source, ()),
    )


@dataclass(frozen=True, slots=True)
class _ConvertedInventory:
    """An Inventory document's spec already turned into the model; the spec itself is not kept."""

    kind: str
    sites: list[m.Site]
    transports: list[m.Transport]
    devices: list[m.Device]
    controllers: list[m.SdwanController]


def _converted(doc: SpecDoc, digests: bool = True) -> SpecDoc:
    """An Inventory document with its model instead of its spec (the same document when it already is);
    ``digests``: see :func:`_slim`."""
    if isinstance(doc.spec, _ConvertedInventory):
        return doc
    src = _slim(doc.source, digests)
    sites, transports, devices = _inventory(doc, src)
    controllers = [
        m.SdwanController(
            c.name,
            c.host,
            c.port,
            m.Credentials(
                c.credentials.username_env,
                c.credentials.password_env,
                c.credentials.key_file,
                c.credentials.become,
                c.credentials.become_password_env,
            ),
            c.mode,
            m.Origin(src, ("spec", "sdwan_controllers", i)),
        )
        for i, c in enumerate(doc.spec.spec.sdwan_controllers)
    ]
    return SpecDoc(src, _ConvertedInventory("Inventory", sites, transports, devices, controllers))


def check_and_convert(docs: Iterable[YamlDocument], digests: bool = True) -> tuple[list[SpecDoc], list[Diagnostic]]:
    """:func:`check_schema`, one document at a time, each Inventory turned into the model as soon as it passes.

    A large inventory's checked spec takes more memory than its model: converted
    at once, only one document's spec is alive at a time, instead of every
    document's next to the model being built from them.
    """
    valid: list[SpecDoc] = []
    problems: list[Diagnostic] = []
    for doc in docs:
        passed, found = check_schema([doc])
        problems += found
        valid += [_converted(v, digests) if v.spec.kind == "Inventory" else v for v in passed]
    return valid, problems


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """A policy file read and each of its documents checked and converted (:func:`check_and_convert`).

    ``documents``: (the document the model points to, or the one read when it failed its schema; its
    :class:`SpecDoc`, None when it failed; its schema problems). ``problems``: reading the file.
    """

    documents: list[tuple[YamlDocument, SpecDoc | None, list[Diagnostic]]]
    problems: list[Diagnostic]


def loaded(docs: list[YamlDocument], problems: list[Diagnostic], digests: bool = True) -> LoadedFile:
    """A file's documents, as read, checked and converted (``digests``: see :func:`_slim`)."""
    out: list[tuple[YamlDocument, SpecDoc | None, list[Diagnostic]]] = []
    for doc in docs:
        checked, found = check_and_convert([doc], digests)
        out.append((checked[0].source, checked[0], found) if checked else (doc, None, found))
    return LoadedFile(out, problems)


def load_files(root: FsPath, jobs: int = 1, digests: bool = True) -> Iterator[LoadedFile]:
    """:func:`read_files`, each file checked and converted (:func:`loaded`) here as the workers send it.

    Converting in the workers too was measured: while they parse, both CPUs are
    busy already, and pickling the model back costs more than sending the YAML
    values (10,000 devices: about +0.3 s of CPU, no faster). The plan cache's
    reader converts the files it did not parse in the workers (:mod:`controller.load.cache`).
    """
    return (loaded(docs, problems, digests) for docs, problems in read_files(root, jobs))


def to_model(docs: list[SpecDoc]) -> tuple[m.Policy, list[Diagnostic]]:
    by_kind: dict[str, list[SpecDoc]] = {}
    # In file order whatever order they were read in: which of two duplicates is "the second" must not
    # depend on the file system.
    for d in sorted(docs, key=lambda d: (d.source.file, d.source.index)):
        by_kind.setdefault(d.spec.kind, []).append(d)
    problems: list[Diagnostic] = []
    settings_docs = by_kind.get("Settings", [])
    for extra in settings_docs[1:]:
        first = settings_docs[0].source
        problems.append(
            Diagnostic(
                extra.source.locate(("kind",)),
                "kind",
                "more than one Settings document",
                "keep one Settings document per policy repository",
                related=(first.locate(("kind",)),),
            )
        )
    sites: list[m.Site] = []
    transports: list[m.Transport] = []
    devices: list[m.Device] = []
    for d in by_kind.get("Inventory", []):
        parts = _converted(d).spec
        sites += parts.sites
        transports += parts.transports
        devices += parts.devices
    controllers = [c for d in by_kind.get("Inventory", []) for c in _converted(d).spec.controllers]
    classes, class_problems = _classes(by_kind.get("ServiceClasses", []))
    problems += class_problems
    policy = m.Policy(
        journeys=tuple(_journey(d) for d in by_kind.get("Journey", [])),
        sites=tuple(sites),
        transports=tuple(transports),
        devices=tuple(devices),
        classes=classes,
        settings=_settings(settings_docs),
        adjustments=tuple(a for d in by_kind.get("Adjustments", []) for a in _adjustments(d)),
        sdwan_controllers=tuple(controllers),
    )
    return policy, problems


Reader = Callable[[FsPath, int, bool], Iterable[LoadedFile]]  # root, jobs, digests


def load_policy(
    root: FsPath | str, jobs: int = 1, reader: Reader = load_files, digests: bool = True
) -> tuple[m.Policy, list[Diagnostic]]:
    """Read, schema-check and convert a policy repository.

    Returns the model and every problem found so far (schema and YAML). Journey
    documents that fail their schema are left out and checking goes on, so the
    user sees their other problems too. When a YAML file cannot be parsed or an
    Inventory/ServiceClasses/Settings document fails, raises
    :class:`PolicyError` with everything found: a model missing those would only
    produce misleading follow-up errors (unknown site, unknown tag ...).
    ``jobs`` > 1 parses a large repository's files in that many worker processes. ``reader`` reads the
    documents file by file, checked and converted (:func:`load_files`, or one that reuses files parsed before:
    :mod:`controller.load.cache`); only the documents the model points to are kept (an Inventory's without its
    values: see :func:`_slim`), so the values of only a few files are in memory at a time, not those of the
    whole fleet. ``digests``: False when
    nothing will fingerprint the sites and devices (no plan cache): their SHA-256 are not worked out.
    """
    docs: list[YamlDocument] = []
    problems: list[Diagnostic] = []
    valid: list[SpecDoc] = []
    schema_problems: list[Diagnostic] = []
    for file in reader(FsPath(root), jobs, digests):
        problems += file.problems
        for doc, spec, found in file.documents:
            valid += [spec] if spec is not None else []
            schema_problems += found
            docs.append(doc)
    # A value the YAML reader already refused (a tag, a duplicate) needs no second "wrong type" error.
    refused = {(d.location.file, d.field) for d in problems if d.field}
    schema_problems = [d for d in schema_problems if (d.location.file, d.field) not in refused]
    passed = {id(v.source) for v in valid}
    failed_kinds = {d.data.get("kind") if isinstance(d.data, dict) else None for d in docs if id(d) not in passed}
    problems += schema_problems
    if problems and (failed_kinds - {"Journey"} or len(problems) > len(schema_problems)):
        raise PolicyError(sort_diagnostics(problems))
    if not valid:
        # Every document failed its schema (say, a folder of journeys only): those errors are the answer.
        raise PolicyError(
            sort_diagnostics(problems)
            or [
                Diagnostic(
                    Location(str(root)), "", "no policy documents found", "add YAML files with apiVersion: qoectl/v1"
                )
            ]
        )
    policy, model_problems = to_model(valid)
    unchecked = tuple(j for d in docs if id(d) not in passed and (j := _unchecked_journey(d)) is not None)
    if unchecked:
        policy = dataclasses.replace(policy, unchecked_journeys=unchecked)
    return policy, problems + model_problems
