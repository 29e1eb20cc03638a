"""``qoectl loop --propose DIR``: the cycle's change as a Git patch for review instead of applying it.

The patch is in ``git format-patch`` form (an mbox message: ``git am`` makes it a
commit; ``git apply`` applies just the diff). It changes only the loop's
Adjustments document, against that file as it is in the policy repository now,
and its commit message says what changes and why: each action with its reason,
the measurements behind it, and the verdicts of the cycle.

Paths in the patch are relative to the Git work tree that holds the policy
folder (found by looking for ``.git`` upwards); outside Git, to the policy
folder itself.
"""

from __future__ import annotations

import difflib
import email.utils
from collections.abc import Sequence
from pathlib import Path

from controller.adjust.document import document_text, loop_file
from controller.adjust.engine import Action, Decision, iso

AUTHOR = "qoectl loop <qoectl-loop@localhost>"
NO_NEWLINE = "\\ No newline at end of file\n"


def repo_root(folder: Path) -> Path:
    """The Git work tree holding ``folder`` (its nearest ancestor with ``.git``), else ``folder``."""
    start = folder.resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return start


def unified(rel: str, old: str | None, new: str) -> str:
    """A git-style unified diff of one text file (``old`` None: a new file)."""
    old_lines = (old or "").splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    head = [f"diff --git a/{rel} b/{rel}\n"]
    if old is None:
        head.append("new file mode 100644\n")
    body = list(difflib.unified_diff(old_lines, new_lines, "/dev/null" if old is None else f"a/{rel}", f"b/{rel}"))
    if not body:
        return ""
    out = []
    for line in body:
        out.append(line)
        if not line.endswith("\n"):  # the last line of a file without a final newline
            out[-1] = line + "\n" + NO_NEWLINE
    return "".join(head + out)


def _value(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _describe(a: Action) -> str:
    what = {
        "reapply": "apply the compiled policy again to",
        "mark": "mark at the edge",
        "raise_guarantee": "raise the guarantee of",
        "squeeze": "squeeze the guarantee of",
        "strict_priority": "move to strict priority",
        "lower_shaper": "lower the shaper of",
        "raise_shaper": "raise the shaper of",
        "relax_guarantee": "step back the guarantee of",
        "unsqueeze": "give back the guarantee of",
        "relax_strict_priority": "move out of strict priority",
        "move_path": "steer the path of",
        "path_back": "steer back the path of",
    }[a.kind]
    if a.kind in ("lower_shaper", "raise_shaper", "reapply") or not a.journey:
        subject = " ".join(x for x in (a.device, a.interface) if x)
    else:
        subject = a.journey + (f" on {a.device}" if a.device else "")
    return f"{what} {subject}: {_value(a.before)} -> {_value(a.after)}"


def commit_message(decision: Decision) -> tuple[str, str]:
    """(subject, body) of the proposal: what changes, why, and the measurements behind it."""
    changes = [a for a in decision.actions if a.kind != "reapply"]
    first = _describe(changes[0]) if changes else "no change"
    more = f" (+{len(changes) - 1} more)" if len(changes) > 1 else ""
    subject = f"qoectl loop: {first}{more}"
    lines = [f"Cycle {decision.cycle} at {iso(decision.time)}: {len(changes)} change(s) to the loop's Adjustments.", ""]
    for a in changes:
        lines.append(f"* {_describe(a)}")
        lines.append(f"  Reason: {a.reason}")
        if a.measurements:
            lines.append("  Measurements: " + ", ".join(f"{k}={v:g}" for k, v in a.measurements))
        lines.append("")
    bad = sorted(k for k, v in decision.verdicts.items() if v == "fail")
    lines.append("Verdicts of the cycle: " + (f"out of target: {', '.join(bad)}" if bad else "nothing out of target"))
    if decision.holds:
        lines += ["", "Left alone this cycle:"]
        lines += [f"* {h.reason}" for h in decision.holds[:20]]
        if len(decision.holds) > 20:
            lines.append(f"* ... and {len(decision.holds) - 20} more")
    return subject, _safe_body(lines)


def _safe_body(lines: Sequence[str]) -> str:
    """Body lines that mail tools cannot mistake for a separator (``From ``, ``---``, ``diff``)."""
    out = []
    for line in lines:
        if line.startswith(("From ", "---", "diff ", "Index: ")):
            line = " " + line
        out.append(line.rstrip())
    return "\n".join(out).strip() + "\n"


def _stat(rel: str, diff: str) -> str:
    added = sum(1 for x in diff.splitlines() if x.startswith("+") and not x.startswith("+++"))
    removed = sum(1 for x in diff.splitlines() if x.startswith("-") and not x.startswith("---"))
    return (
        f" {rel} | {added + removed} {'+' * added}{'-' * removed}\n"
        f" 1 file changed, {added} insertion{'s' if added != 1 else ''}(+), "
        f"{removed} deletion{'s' if removed != 1 else ''}(-)\n"
    )


def format_patch(
    rel: str, old: str | None, new: str, subject: str, body: str, date: float, author: str = AUTHOR
) -> str:
    """One ``git format-patch`` message changing ``rel`` from ``old`` to ``new``."""
    diff = unified(rel, old, new)
    return (
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        f"From: {author}\n"
        f"Date: {email.utils.formatdate(date, usegmt=False)}\n"
        f"Subject: [PATCH] {subject}\n"
        "\n"
        f"{body}"
        "---\n"
        f"{_stat(rel, diff)}"
        "\n"
        f"{diff}"
        "-- \n"
        "qoectl\n"
    )


def propose(policy_root: Path, decision: Decision, out_dir: Path) -> Path | None:
    """Write the decision's change of the loop's document as a patch in ``out_dir``; None when nothing changes.

    The file is ``out_dir/<NNNN>-qoectl-loop-cycle-<cycle>.patch`` (numbered after the patches already there).
    """
    path = loop_file(policy_root)
    try:
        old: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    new = document_text(decision.adjustments)
    if old == new:
        return None
    root = repo_root(policy_root)
    rel = path.resolve().relative_to(root).as_posix()
    subject, body = commit_message(decision)
    text = format_patch(rel, old, new, subject, body, decision.time)
    out_dir.mkdir(parents=True, exist_ok=True)
    number = 1 + sum(1 for _ in out_dir.glob("[0-9][0-9][0-9][0-9]-*.patch"))
    target = out_dir / f"{number:04d}-qoectl-loop-cycle-{decision.cycle}.patch"
    target.write_text(text, encoding="utf-8")
    return target
