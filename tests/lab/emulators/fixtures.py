"""pytest fixture for emulated devices. Use it from a conftest.py or a test module::

    from tests.lab.emulators.fixtures import emulated_devices  # noqa: F401
    # or, if a linter flags test parameters that shadow the import (ruff F811):
    from tests.lab.emulators.fixtures import emulated_devices_fixture  # noqa: F401

    def test_push(emulated_devices):
        lab = emulated_devices([("r1", "cisco_iosxe"), ("sw1", "arista_eos")])
        ...

Every lab the factory started is stopped in teardown, also when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from .lab import DeviceLab, start_devices


class LabFactory(Protocol):
    def __call__(self, specs: list[tuple[str, str]], **kwargs: Any) -> DeviceLab: ...


@pytest.fixture(name="emulated_devices")
def emulated_devices_fixture() -> Iterator[LabFactory]:
    """Factory: ``emulated_devices(specs, username=..., password=..., host_key_type=...)``."""
    labs: list[DeviceLab] = []

    def factory(specs: list[tuple[str, str]], **kwargs: Any) -> DeviceLab:
        lab = start_devices(specs, **kwargs)
        labs.append(lab)
        return lab

    yield factory
    errors: list[BaseException] = []
    for lab in labs:
        try:
            lab.stop()
        except BaseException as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


#: the same fixture under its own name, for ``from ...fixtures import emulated_devices``
emulated_devices = emulated_devices_fixture
