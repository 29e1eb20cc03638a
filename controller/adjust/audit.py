"""Every decision of the loop in the run folder's JSON-lines audit log (:class:`controller.apply.audit.RunFolder`).

One ``loop_cycle`` line per cycle (its verdicts, whether the Adjustments changed,
the devices to apply, whether they were applied), then one ``loop_action`` line per
change and one ``loop_no_action`` line per thing left alone, each with its reason
and the measurements behind it. A cycle with nothing to do still says so.
"""

from __future__ import annotations

from controller.adjust.engine import Decision
from controller.apply.audit import RunFolder


def record(folder: RunFolder, decision: Decision, applied: bool | None = None) -> None:
    folder.event(
        "loop_cycle",
        cycle=decision.cycle,
        time=decision.to_json()["time"],
        verdicts=dict(sorted(decision.verdicts.items())),
        changed=decision.changed,
        devices=list(decision.devices),
        applied=applied,
        actions=len(decision.actions),
    )
    for a in decision.actions:
        data = a.to_json()
        data.pop("device")
        folder.event("loop_action", a.device, cycle=decision.cycle, **data)
    for h in decision.holds:
        data = h.to_json()
        data.pop("device")
        folder.event("loop_no_action", h.device, cycle=decision.cycle, **data)
    if not decision.actions and not decision.holds:
        failing = sorted(k for k, v in decision.verdicts.items() if v == "fail")
        reason = (
            "every journey measured is in target (or not measured): nothing to change"
            if not failing
            else f"out of target, waiting: {', '.join(failing)}"
        )
        folder.event("loop_no_action", cycle=decision.cycle, reason=reason, measurements={})
