"""examples/lab-sdwan (two routers, each on mpls and internet) as a private copy for one test.

Like :mod:`tests.lab.qoelab`: its own name (namespaces ``qlab-s<hex>-*``), a free management /24 and a state
folder under the test's tmp_path; always taken down (every process by PID, the cross traffic with them).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from controller.lab import control
from tests.conftest import REPO
from tests.lab.qoelab import PrivateLab, free_management_net, take_down

SDWAN_LAB = REPO / "examples" / "lab-sdwan" / "lab.yaml"
SDWAN_POLICY = REPO / "examples" / "lab-sdwan" / "policies"


@contextmanager
def sdwan_lab(tmp_path: Path) -> Iterator[PrivateLab]:
    doc = yaml.safe_load(SDWAN_LAB.read_text(encoding="utf-8"))
    name = f"s{secrets.token_hex(3)}"
    net = free_management_net()
    doc["metadata"]["name"] = name
    for i, router in enumerate(doc["spec"]["routers"]):
        router["management"] = f"{net.network_address + 4 * i}/30"
    doc["spec"]["policy"] = str(SDWAN_POLICY)
    folder = tmp_path / "labfile"
    folder.mkdir()
    path = folder / "lab.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    lab = PrivateLab(name, path, tmp_path / "state")
    try:
        control.up(lab.lab_file, lab.root)
        yield lab
    finally:
        left = take_down(lab)
        assert not left, f"lab {lab.name} left behind: {left}"
