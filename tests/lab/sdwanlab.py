"""examples/lab-sdwan (two routers, each on mpls and internet) as a private copy for one test.

:func:`tests.lab.qoelab.running_lab` with this lab file: its own name (namespaces ``qlab-t<hex>-*``), a free
management /24 and a state folder under the test's tmp_path; always taken down (every process by PID, the
cross traffic with them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import REPO
from tests.lab.qoelab import PrivateLab, running_lab

SDWAN_LAB = REPO / "examples" / "lab-sdwan" / "lab.yaml"
SDWAN_POLICY = REPO / "examples" / "lab-sdwan" / "policies"


@contextmanager
def sdwan_lab(tmp_path: Path) -> Iterator[PrivateLab]:
    with running_lab(tmp_path, lab_file=SDWAN_LAB, policy=SDWAN_POLICY) as lab:
        yield lab
