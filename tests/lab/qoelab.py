"""The bundled ``qoectl lab`` (examples/lab/lab.yaml) as a private copy for one test.

A test must not meet a lab someone runs on the same machine (``/run/qoectl/lab``, 198.19.254.0/24)
or another test's: its copy gets a name of its own (so namespaces ``qlab-t<hex>-*``), a management
/24 that no interface of this machine uses, and a state folder under the test's tmp_path. Its policy
is examples/lab/policies aimed at that copy (:func:`controller.lab.policy.retarget`).

:func:`running_lab` brings it up and always takes it down (every process by PID, every namespace),
also when the test fails; anything ``down`` could not remove fails the test.
"""

from __future__ import annotations

import ipaddress
import random
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from controller.lab import control
from controller.lab.netns import existing_namespaces, run
from controller.lab.policy import retarget
from controller.lab.state import LabState, current
from tests.conftest import REPO

BUNDLED_LAB = REPO / "examples" / "lab" / "lab.yaml"
BUNDLED_POLICY = REPO / "examples" / "lab" / "policies"


def _lab_ok() -> tuple[bool, str]:
    try:
        control.preflight()
    except control.LabError as exc:
        return False, str(exc)
    return True, ""


_ok, _why = _lab_ok()
requires_lab = pytest.mark.skipif(not _ok, reason=_why)


def free_management_net() -> ipaddress.IPv4Network:
    """A /24 of 198.19.0.0/16 that no interface here uses (the bundled lab's 198.19.254.0/24 excluded)."""
    out = run(["ip", "-o", "-4", "addr", "show"], check=False)
    used = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            addr = ipaddress.ip_interface(parts[parts.index("inet") + 1])
            used.add(int(addr.ip) >> 8)
    base = int(ipaddress.IPv4Address("198.19.0.0")) >> 8
    choices = [base + i for i in range(1, 254) if base + i not in used]
    return ipaddress.IPv4Network(f"{ipaddress.IPv4Address(random.choice(choices) << 8)}/24")


@dataclass(frozen=True)
class PrivateLab:
    name: str
    lab_file: Path
    root: Path  # the state folder's root (--state-dir)

    def state(self) -> LabState:
        state = current(self.root)
        assert state is not None, "the lab is not up"
        return state

    def policy(self, dest: Path) -> Path:
        """examples/lab/policies aimed at this lab."""
        return retarget(BUNDLED_POLICY, self.state(), dest)


def lab_copy(
    tmp_path: Path, *, lab_file: Path = BUNDLED_LAB, policy: Path = BUNDLED_POLICY, **spec_changes: object
) -> PrivateLab:
    """The bundled lab file (or ``lab_file``, its policy ``policy``) with a unique name and management /24
    (and ``spec_changes`` to ``spec``)."""
    doc = yaml.safe_load(lab_file.read_text(encoding="utf-8"))
    name = f"t{secrets.token_hex(3)}"
    net = free_management_net()
    doc["metadata"]["name"] = name
    for i, router in enumerate(doc["spec"]["routers"]):
        router["management"] = f"{net.network_address + 4 * i}/30"
    doc["spec"]["policy"] = str(policy)
    doc["spec"].update(spec_changes)
    folder = tmp_path / "labfile"
    folder.mkdir()
    path = folder / "lab.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return PrivateLab(name, path, tmp_path / "state")


def take_down(lab: PrivateLab) -> list[str]:
    """Remove the lab (state or no state); what is left afterwards (empty: nothing)."""
    left: list[str] = []
    report = control.down(lab.root)
    if report is not None:
        left += list(report.left)
    orphans = control.down(lab.root, name=lab.name)  # namespaces of the name without a state: none, normally
    if orphans is not None:
        left += [f"orphan namespace {n}" for n in orphans.namespaces] + list(orphans.left)
    left += [f"namespace {n}" for n in existing_namespaces() if n.startswith(f"qlab-{lab.name}-")]
    return left


@contextmanager
def running_lab(
    tmp_path: Path, *, lab_file: Path = BUNDLED_LAB, policy: Path = BUNDLED_POLICY, **spec_changes: object
) -> Iterator[PrivateLab]:
    lab = lab_copy(tmp_path, lab_file=lab_file, policy=policy, **spec_changes)
    try:
        control.up(lab.lab_file, lab.root)
        yield lab
    finally:
        left = take_down(lab)
        assert not left, f"lab {lab.name} left behind: {left}"
