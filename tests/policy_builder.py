"""Write small, valid qoectl policy repositories into a temporary folder for tests.

Why a builder rather than fixture files: most tests need *one* thing wrong in an
otherwise valid repository, and need to know the exact line of that thing. The
builder starts from a small valid lab (two sites, three transports, one IOS-XE
and one Linux router, addresses only from 198.18.0.0/15), lets a test replace or
deep-merge any part, writes plain YAML with stable formatting, and can tell the
test on which line a key or value landed.

Reusable by anyone::

    from tests.policy_builder import PolicyRepo, voice_journey

    repo = PolicyRepo.standard()
    repo.add_journey(voice_journey("calls", mos=4.2, codec="g729a"))
    root = repo.write(tmp_path)
    line = repo.line_of("journeys/calls.yaml", "mos:")

Nothing here mutates its inputs: every helper deep-copies what it is given.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

API = "qoectl/v1"

# Lab addresses only (RFC 2544 benchmarking range), never real networks.
LAB_NET_A = "198.18.0.0/24"
LAB_NET_B = "198.18.1.0/24"
LAB_NET_C = "198.18.2.0/24"
LAB_NET_V6 = "2001:db8:18::/48"

Doc = dict[str, Any]


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``patch`` merged in (nested mappings merged, anything else replaced).

    A patch value of :data:`DELETE` removes the key, so a test can drop a required field.
    """
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()


def document(kind: str, name: str, spec: Mapping[str, Any], **metadata: Any) -> Doc:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name, **metadata}, "spec": copy.deepcopy(dict(spec))}


# --------------------------------------------------------------------------- journeys


def journey(name: str, target: Mapping[str, Any], *, patch: Mapping[str, Any] | None = None, **spec: Any) -> Doc:
    """A Journey document. ``spec`` keys replace the defaults; ``patch`` is deep-merged last."""
    base: dict[str, Any] = {
        "traffic": {
            "application": name,
            "match": [{"protocol": "udp", "destination_ports": [40000], "destination_prefixes": [LAB_NET_A]}],
        },
        "target": dict(target),
        "priority": "normal",
        "bandwidth": {"share_pct": 5},
    }
    base.update(copy.deepcopy(spec))
    doc = document("Journey", name, base, owner="tests@lab.example")
    return deep_merge(doc, patch) if patch else doc


def voice_journey(
    name: str = "voice",
    *,
    mos: float | None = 4.0,
    codec: str = "g711",
    port: int | str = "16384-32767",
    flows: int = 10,
    per_flow_kbps: float = 90,
    **spec: Any,
) -> Doc:
    """Voice calls to LAB_NET_A (critical, EF): ``flows x per_flow_kbps`` of strict priority."""
    target: dict[str, Any] = {"voice": {"codec": codec}}
    if mos is not None:
        target["voice"]["mos"] = mos
    target = spec.pop("target", target)
    spec.setdefault(
        "traffic",
        {"match": [{"protocol": "udp", "destination_ports": [port], "destination_prefixes": [LAB_NET_A]}]},
    )
    spec.setdefault("priority", "critical")
    spec.setdefault("bandwidth", {"per_flow_kbps": per_flow_kbps, "concurrent_flows": flows})
    return journey(name, target, **spec)


def interactive_journey(name: str, *, port: int = 443, prefix: str = LAB_NET_B, **spec: Any) -> Doc:
    """A TCP application (Apdex T 1 s, 0.9) on ``port`` of ``prefix``; 5 % of each link."""
    spec.setdefault(
        "traffic", {"match": [{"protocol": "tcp", "destination_ports": [port], "destination_prefixes": [prefix]}]}
    )
    target = spec.pop("target", {"interactive": {"apdex_t_ms": 1000, "apdex": 0.9}})
    return journey(name, target, **spec)


def bulk_journey(name: str, *, port: int = 8400, scavenger: bool = False, **spec: Any) -> Doc:
    """Bulk TCP to LAB_NET_C (priority low, or the scavenger class)."""
    spec.setdefault(
        "traffic", {"match": [{"protocol": "tcp", "destination_ports": [port], "destination_prefixes": [LAB_NET_C]}]}
    )
    spec.setdefault("priority", "scavenger" if scavenger else "low")
    target = spec.pop("target", {"bulk": {"min_throughput_kbps": 1000, "scavenger": scavenger}})
    return journey(name, target, **spec)


def video_journey(name: str, mode: str = "conferencing", *, port: int = 9000, **video: Any) -> Doc:
    """Video to LAB_NET_B: UDP for conferencing, TCP for streaming; ``video`` adds target keys (startup_s ...)."""
    target = {"video": {"mode": mode, "bitrate_kbps": 1500, **video}}
    protocol = "udp" if mode == "conferencing" else "tcp"
    return journey(
        name,
        target,
        traffic={"match": [{"protocol": protocol, "destination_ports": [port], "destination_prefixes": [LAB_NET_B]}]},
        priority="high",
        bandwidth={"per_flow_kbps": 1800, "concurrent_flows": 2},
    )


# --------------------------------------------------------------------------- inventory


def site(name: str, context: str = "branch") -> Doc:
    return {"name": name, "context": context}


def transport(name: str, base_delay_ms: float, jitter_ms: float = 0, loss_pct: float = 0, **extra: Any) -> Doc:
    return {"name": name, "base_delay_ms": base_delay_ms, "jitter_ms": jitter_ms, "loss_pct": loss_pct, **extra}


def wan(name: str, bandwidth_kbps: int, transport: str | None = "mpls", port_speed_kbps: int | None = None) -> Doc:
    out: dict[str, Any] = {"name": name, "role": "wan", "bandwidth_kbps": bandwidth_kbps}
    if transport is not None:
        out["transport"] = transport
    if port_speed_kbps is not None:
        out["port_speed_kbps"] = port_speed_kbps
    return out


def lan(name: str, trust_dscp: bool = True) -> Doc:
    return {"name": name, "role": "lan", "trust_dscp": trust_dscp}


def device(
    name: str,
    platform: str = "cisco_iosxe",
    site: str = "branch-1",
    interfaces: list[Doc] | None = None,
    tags: list[str] | None = None,
    **extra: Any,
) -> Doc:
    """A device; by default one 20 Mbit/s WAN on mpls (shaped on a gigabit port for IOS-XE) and one LAN."""
    if interfaces is None:
        if platform == "linux":
            interfaces = [wan("wan0", 20000, "mpls"), lan("lan0", trust_dscp=False)]
        else:
            interfaces = [
                wan("GigabitEthernet0/0/0", 20000, "mpls", port_speed_kbps=1_000_000),
                lan("GigabitEthernet0/0/1"),
            ]
    return {
        "name": name,
        "platform": platform,
        "host": f"{name}.lab.example",
        "site": site,
        "tags": list(tags if tags is not None else ["wan-edge"]),
        "credentials": {"username_env": "QOECTL_USER", "password_env": "QOECTL_PASSWORD"},
        "interfaces": copy.deepcopy(interfaces),
        **copy.deepcopy(extra),
    }


def inventory(
    name: str = "lab",
    sites: list[Doc] | None = None,
    transports: list[Doc] | None = None,
    devices: list[Doc] | None = None,
) -> Doc:
    spec: dict[str, Any] = {}
    if sites is not None:
        spec["sites"] = copy.deepcopy(sites)
    if transports is not None:
        spec["transports"] = copy.deepcopy(transports)
    if devices is not None:
        spec["devices"] = copy.deepcopy(devices)
    return document("Inventory", name, spec)


def settings(**spec: Any) -> Doc:
    return document("Settings", "lab-settings", spec)


def service_classes(classes: list[Doc], name: str = "lab-classes") -> Doc:
    return document("ServiceClasses", name, {"classes": classes})


STANDARD_TRANSPORTS = [
    transport("mpls", 20, 2, 0.01, cost=30),
    transport("internet", 35, 5, 0.1, cost=5),
    transport("satellite", 300, 20, 0.5, cost=80),
]


# --------------------------------------------------------------------------- repository


@dataclass
class PolicyRepo:
    """A policy repository in memory: relative file name -> list of documents (or raw text)."""

    files: dict[str, list[Doc] | str] = field(default_factory=dict)
    root: Path | None = None

    @classmethod
    def standard(cls, *, journeys: bool = True) -> PolicyRepo:
        """Two sites, three transports, an IOS-XE and a Linux router; a voice and an interactive journey."""
        repo = cls()
        repo.files["inventory/sites.yaml"] = [
            inventory("lab-sites", sites=[site("branch-1"), site("hq", "campus")], transports=STANDARD_TRANSPORTS)
        ]
        repo.files["inventory/devices.yaml"] = [
            inventory(
                "lab-devices",
                devices=[
                    device("br1-rtr1", "cisco_iosxe", "branch-1"),
                    device("hq-rtr1", "linux", "hq", tags=["wan-edge", "core"]),
                ],
            )
        ]
        if journeys:
            repo.add_journey(voice_journey("voice"))
            repo.add_journey(interactive_journey("crm-web"))
        return repo

    def copy(self) -> PolicyRepo:
        return PolicyRepo(copy.deepcopy(self.files))

    def add(self, rel: str, *docs: Doc) -> PolicyRepo:
        """Append documents to a file (created if needed)."""
        existing = self.files.get(rel, [])
        if isinstance(existing, str):
            raise ValueError(f"{rel} holds raw text")
        self.files[rel] = [*existing, *copy.deepcopy(list(docs))]
        return self

    def add_journey(self, doc: Doc, rel: str | None = None) -> PolicyRepo:
        return self.add(rel or f"journeys/{doc['metadata']['name']}.yaml", doc)

    def add_raw(self, rel: str, text: str) -> PolicyRepo:
        """A file written exactly as given (for YAML syntax, tags, duplicate keys ...)."""
        self.files[rel] = text
        return self

    def remove(self, rel: str) -> PolicyRepo:
        self.files.pop(rel, None)
        return self

    def docs(self, rel: str) -> list[Doc]:
        value = self.files[rel]
        if isinstance(value, str):
            raise ValueError(f"{rel} holds raw text")
        return value

    def devices(self) -> list[Doc]:
        return list(self.docs("inventory/devices.yaml")[0]["spec"]["devices"])

    def set_devices(self, devices: list[Doc]) -> PolicyRepo:
        self.docs("inventory/devices.yaml")[0]["spec"]["devices"] = copy.deepcopy(devices)
        return self

    @staticmethod
    def dump(docs: list[Doc]) -> str:
        """Stable YAML: key order as written, block style, one document per ``---``."""
        return "".join(
            ("---\n" if i else "") + yaml.safe_dump(d, sort_keys=False, default_flow_style=False, width=1000)
            for i, d in enumerate(docs)
        )

    def text(self, rel: str) -> str:
        value = self.files[rel]
        return value if isinstance(value, str) else self.dump(value)

    def write(self, root: Path) -> Path:
        """Write every file under ``root`` (created) and return ``root``."""
        root.mkdir(parents=True, exist_ok=True)
        for rel, _ in sorted(self.files.items()):
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.text(rel), encoding="utf-8")
        self.root = root
        return root

    def line_of(self, rel: str, pattern: str, nth: int = 0, after: str | None = None) -> int:
        """1-based line of the ``nth`` line matching regex ``pattern`` (after the first line matching ``after``)."""
        lines = self.text(rel).splitlines()
        start = 0
        if after is not None:
            start = next(i for i, line in enumerate(lines) if re.search(after, line)) + 1
        hits = [i + 1 for i, line in enumerate(lines) if i >= start and re.search(pattern, line)]
        if len(hits) <= nth:
            raise AssertionError(f"{pattern!r} (#{nth}) not found in {rel}:\n{self.text(rel)}")
        return hits[nth]

    def col_of(self, rel: str, line: int, token: str) -> int:
        """1-based column of ``token`` on ``line``."""
        return self.text(rel).splitlines()[line - 1].index(token) + 1


def many_journeys_repo(n_journeys: int = 24, wan_links: list[tuple[int, int | None]] | None = None) -> PolicyRepo:
    """A bigger repository: ``n_journeys`` journeys of every kind on one IOS-XE router with several WAN links.

    ``wan_links`` is a list of (bandwidth_kbps, port_speed_kbps or None); a port speed above the
    bandwidth makes a sub-rate (shaped) link.
    """
    links = wan_links or [(50_000, 1_000_000), (100_000, None), (20_000, 100_000), (1_000_000, 1_000_000)]
    transports = ["mpls", "internet", "mpls", "internet"]
    interfaces = [
        wan(f"GigabitEthernet0/0/{i}", bw, transports[i % len(transports)], port_speed_kbps=port)
        for i, (bw, port) in enumerate(links)
    ]
    interfaces += [lan("GigabitEthernet0/1/0"), lan("GigabitEthernet0/1/1", trust_dscp=False)]
    repo = PolicyRepo.standard(journeys=False)
    repo.set_devices([device("big-rtr1", "cisco_iosxe", "branch-1", interfaces=interfaces)])
    kinds = ["interactive", "bulk", "video", "scavenger", "streaming"]
    repo.add_journey(voice_journey("voice", flows=5))
    for i in range(n_journeys - 1):
        kind = kinds[i % len(kinds)]
        port = 20000 + i
        prefix = f"198.19.{i}.0/24"
        name = f"{kind}-{i:02d}"
        if kind == "interactive":
            doc = interactive_journey(name, port=port, prefix=prefix, bandwidth={"share_pct": 1})
            doc["spec"]["traffic"]["match"].append(
                {"protocol": "udp", "source_ports": ["1000-1010"], "destination_prefixes": [f"2001:db8:19:{i}::/64"]}
            )
        elif kind in ("bulk", "scavenger"):
            doc = bulk_journey(name, port=port, scavenger=kind == "scavenger", bandwidth={"share_pct": 1})
            doc["spec"]["traffic"]["match"][0]["destination_prefixes"] = [prefix]
        elif kind == "video":
            doc = video_journey(name, port=port)
            doc["spec"]["traffic"]["match"][0]["destination_prefixes"] = [prefix]
            doc["spec"]["bandwidth"] = {"per_flow_kbps": 100, "concurrent_flows": 2}
        else:
            doc = video_journey(name, "streaming", port=port, startup_s=5)
            doc["spec"]["traffic"]["match"][0]["destination_prefixes"] = [prefix]
            doc["spec"]["priority"] = "normal"
            doc["spec"]["bandwidth"] = {"share_pct": 1}
        repo.add_journey(doc)
    return repo
