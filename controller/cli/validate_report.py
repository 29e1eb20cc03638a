"""``qoectl validate --junit FILE``: the problems as JUnit XML, so a CI shows each one at its file and line.

One test case per policy file that has no problem (passed), and one per problem (failed, or passed with
the warning in ``system-out``), named ``file:line:col field`` and carrying ``file`` and ``line`` attributes;
the failure message is the same ``file:line:col: field: message; hint: ...`` line the terminal shows.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from controller.errors import Diagnostic
from controller.load.loader import display_path, policy_files

SUITE = "qoectl validate"


def _case_name(d: Diagnostic) -> str:
    return f"{d.location}" + (f" {d.field}" if d.field else "")


def junit_xml(path: Path, diagnostics: Sequence[Diagnostic]) -> str:
    """The JUnit report of validating the policy at ``path`` with these ``diagnostics`` (errors and warnings)."""
    try:
        files = [display_path(p) for p in policy_files(path)] if path.exists() else []
    except OSError:
        files = []
    by_file: dict[str, list[Diagnostic]] = {f: [] for f in files}
    for d in diagnostics:
        by_file.setdefault(d.location.file, []).append(d)
    errors = sum(1 for d in diagnostics if d.severity == "error")
    cases = sum(max(1, len(ds)) for ds in by_file.values())
    root = ET.Element("testsuites", name=SUITE, tests=str(cases), failures=str(errors), errors="0")
    suite = ET.SubElement(
        root, "testsuite", name=SUITE, tests=str(cases), failures=str(errors), errors="0", skipped="0"
    )
    for file in sorted(by_file):
        problems = sorted(by_file[file], key=Diagnostic.sort_key)
        if not problems:
            ET.SubElement(suite, "testcase", classname=SUITE, name=file, file=file)
            continue
        for d in problems:
            attrs = {"classname": SUITE, "name": _case_name(d), "file": file}
            if d.location.line:
                attrs["line"] = str(d.location.line)
            case = ET.SubElement(suite, "testcase", attrs)
            if d.severity == "error":
                failure = ET.SubElement(case, "failure", message=d.format(), type="error")
                failure.text = d.format()
            else:
                ET.SubElement(case, "system-out").text = d.format()
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(target: Path, path: Path, diagnostics: Sequence[Diagnostic]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(junit_xml(path, diagnostics), encoding="utf-8")
