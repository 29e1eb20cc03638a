"""A lab's policy, aimed at the lab as it runs: for labs built somewhere else than the bundled defaults.

``examples/lab/policies`` names the bundled lab's routers as ``qoectl lab up`` builds them by default
(management addresses from ``examples/lab/lab.yaml``, the key under ``/run/qoectl/lab/branch-hub/``).
A lab with another state folder or other management addresses (a test's, a second lab) needs the same
policy with its own addresses and key: :func:`retarget` writes that copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from controller.lab.config import SSH_PORT
from controller.lab.state import USER_ENV, LabState


def retarget(policy: Path, state: LabState, dest: Path) -> Path:
    """Copy ``policy`` to ``dest``; every inventory device named like a lab router reaches that router.

    The device gets the router's management address, port 22, ``username_env: QOECTL_LAB_USER`` and the
    lab's key file; a router on two WANs or more (an SD-WAN edge) also gets, on each WAN interface named
    like one of its lab links, that link's ISP address as ``gateway``. Everything else (journeys,
    interfaces, bandwidths) is copied as it is. Inventory files are rewritten without their comments;
    other files are copied byte for byte.
    """
    cfg = state.config
    routers = {r.name: r for r in cfg.routers}
    gateways = {
        (link.router, link.interface): link.isp_address
        for w in cfg.wans
        for link in w.links
        if len(cfg.wans_of(link.router)) > 1
    }
    shutil.copytree(policy, dest, dirs_exist_ok=False)
    for path in sorted(dest.rglob("*")):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        if not any(isinstance(d, dict) and d.get("kind") == "Inventory" for d in docs):
            continue
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "Inventory":
                for device in (doc.get("spec") or {}).get("devices") or []:
                    router = routers.get(device.get("name"))
                    if router is not None:
                        _aim(device, router.address, str(state.files.key))
                        for iface in device.get("interfaces") or []:
                            gateway = gateways.get((router.name, iface.get("name")))
                            if gateway is not None and iface.get("role") == "wan":
                                iface["gateway"] = gateway
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    return dest


def _aim(device: dict[str, Any], host: str, key_file: str) -> None:
    device["host"] = host
    device["port"] = SSH_PORT
    creds = dict(device.get("credentials") or {})
    creds["username_env"] = USER_ENV
    creds["key_file"] = key_file
    creds.pop("password_env", None)
    device["credentials"] = creds
