"""What qoectl imports is what it declares (issue 15 item 6), and SSH failures are told apart by type.

* Every third-party module that a file of ``controller/`` imports (lazy imports in functions included)
  belongs to a distribution in ``[project.dependencies]``; the step library ``controller/testing`` may
  also use the ``bdd`` extra, and the ``test`` extra includes ``bdd``.
* netmiko and paramiko are bounded to the major version the tests ran with.
* Only netmiko's public names are imported (its top-level ``__all__`` and ``netmiko.exceptions``).
* Without pytest-bdd the step library fails with a message naming the extra.
* :func:`controller.apply.connection.classify` picks the kind from the exception's type and the
  exceptions netmiko raised it while handling, whatever the messages say.
"""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions, version
from pathlib import Path

import netmiko
import paramiko  # type: ignore[import-untyped]
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from controller.apply.connection import UnknownHostKey, classify
from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# pydantic pins pydantic-core to one exact version of its own: declaring it too could only conflict.
COMES_WITH = {"pydantic_core": "pydantic"}


def requirements(group: str | None = None) -> dict[str, Requirement]:
    reqs = PYPROJECT["dependencies"] if group is None else PYPROJECT["optional-dependencies"][group]
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs}


def imported_modules(folder: Path) -> dict[str, list[str]]:
    """Top-level module -> the files below ``folder`` that import it (absolute imports, anywhere in the file)."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], []).append(str(path.relative_to(REPO)))
    return found


def undeclared(folder: Path, allowed: set[str]) -> dict[str, list[str]]:
    dists = packages_distributions()
    out = {}
    for module, files in imported_modules(folder).items():
        if module in sys.stdlib_module_names or module == "__future__" or module == "controller":
            continue
        owners = {d.lower() for d in dists.get(COMES_WITH.get(module, module), [])}
        if not owners & allowed:
            out[module] = files
    return out


def test_every_third_party_import_is_a_declared_dependency() -> None:
    core = set(requirements())
    shipped = REPO / "controller"
    testing = shipped / "testing"
    wrong = {
        m: [f for f in files if not f.startswith("controller/testing/")]
        for m, files in undeclared(shipped, core).items()
    }
    wrong = {m: files for m, files in wrong.items() if files}
    assert not wrong, f"imported by qoectl but not in [project.dependencies]: {wrong}"
    assert not undeclared(testing, core | set(requirements("bdd"))), "the step library needs more than qoectl[bdd]"
    assert "qoectl[bdd]" in PYPROJECT["optional-dependencies"]["test"]


@pytest.mark.parametrize("name", ["netmiko", "paramiko"])
def test_ssh_libraries_are_bounded_to_the_tested_major_version(name: str) -> None:
    req = requirements()[name]
    installed = Version(version(name))
    assert req.specifier.contains(installed), (req, installed)
    assert not req.specifier.contains(Version(f"{installed.major + 1}.0")), f"{req}: no upper bound"
    assert not req.specifier.contains(Version(f"{installed.major - 1}.99")), f"{req}: allows an untested major"


def test_only_public_netmiko_names_are_imported() -> None:
    for path in sorted((REPO / "controller").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "netmiko":
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                assert node.module in ("netmiko", "netmiko.exceptions"), f"{where}: from {node.module}"
                if node.module == "netmiko":
                    assert {a.name for a in node.names} <= set(netmiko.__all__), where
            if isinstance(node, ast.Import):
                assert all(a.name == "paramiko" or not a.name.startswith("netmiko.") for a in node.names)


def test_the_step_library_names_the_extra_when_pytest_bdd_is_missing() -> None:
    code = "import sys; sys.modules['pytest_bdd'] = None; import controller.testing.bdd_steps"
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: controller.testing.bdd_steps needs pytest and pytest-bdd"), last
    assert "pip install 'qoectl[bdd]'" in last


def raised_while_handling(cause: BaseException, outer: BaseException) -> BaseException:
    """``outer`` raised inside ``except`` of ``cause``, as netmiko does (its ``__context__`` is ``cause``)."""
    try:
        try:
            raise cause
        except BaseException:
            raise outer  # noqa: B904 - the implicit context is the point
    except BaseException as exc:
        return exc


MISLEADING = "host key does not match; not found in known_hosts; Socket is closed; DNS failure"
KEYS = [paramiko.RSAKey.generate(1024) for _ in range(2)]
CHANGED = paramiko.BadHostKeyException("[127.0.0.1]:2222", KEYS[0], KEYS[1])


@pytest.mark.parametrize(
    ("exc", "connected", "kind", "says"),
    [
        (raised_while_handling(CHANGED, netmiko.NetmikoTimeoutException(MISLEADING)), False, "host_key", "CHANGED"),
        (
            raised_while_handling(UnknownHostKey("x"), netmiko.NetmikoTimeoutException(MISLEADING)),
            False,
            "host_key",
            "unknown host key",
        ),
        (
            raised_while_handling(
                paramiko.AuthenticationException("x"), netmiko.NetmikoAuthenticationException(MISLEADING)
            ),
            False,
            "auth",
            "authentication failed",
        ),
        (
            raised_while_handling(socket.gaierror(-2, "x"), netmiko.NetmikoTimeoutException(MISLEADING)),
            False,
            "connect",
            "does not resolve",
        ),
        (
            raised_while_handling(ConnectionRefusedError(111, "x"), netmiko.NetmikoTimeoutException(MISLEADING)),
            False,
            "connect",
            "refused or unreachable",
        ),
        (
            raised_while_handling(TimeoutError("x"), netmiko.NetmikoTimeoutException(MISLEADING)),
            False,
            "connect",
            "connect timeout",
        ),
        (
            raised_while_handling(paramiko.SSHException("banner"), netmiko.NetmikoTimeoutException(MISLEADING)),
            False,
            "connect",
            "SSH connection failed (banner)",
        ),
        (OSError(MISLEADING), True, "session_lost", "dropped"),
        (paramiko.SSHException(MISLEADING), True, "session_lost", "dropped"),
        (OSError(MISLEADING), False, "connect", "refused or unreachable"),
        (netmiko.ReadException(MISLEADING), False, "session_lost", "dropped"),
        (netmiko.ReadTimeout(MISLEADING), True, "timeout", "command timeout"),
        (netmiko.ConfigInvalidException("% Invalid input\nmore"), True, "rejected", "rejected a line: % Invalid input"),
        (ValueError(MISLEADING), True, "internal", "ValueError"),
    ],
)
def test_failures_are_classified_by_type_not_by_message(
    exc: BaseException, connected: bool, kind: str, says: str
) -> None:
    err = classify(exc, "r1", connected=connected)
    assert (err.kind, says in err.message) == (kind, True), err.message
