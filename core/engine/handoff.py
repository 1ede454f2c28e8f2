"""What a plan's step is told about the steps it waits for: their structured summaries (what was
done, the files, what the agent said last), never their logs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.plan_text import latest_steps
from core.text import clip

if TYPE_CHECKING:
    from core.models import Task
    from core.store import Store

_SAID = 600


def handoff(store: Store, task: Task) -> str:
    assert task.plan_id is not None
    plan = store.get_plan(task.plan_id)
    steps = latest_steps(store.plan_tasks(task.plan_id))
    lines = ["", "", f"This is step {task.plan_step} of the plan {plan.id}: {clip(plan.text, 300)}"]
    lines.append("The steps it builds on are done; what each did:")
    for number in task.step_after:
        step = steps.get(number)
        if step is None or number in plan.skipped:
            lines.append(f"- Step {number}: skipped.")
            continue
        summary = step.summary or {}
        lines.append(f"- Step {number}, {step.step_title} ({step.agent}, {step.category}):")
        lines += [f"  - {line}" for line in summary.get("digest") or []]
        files = [f["path"] for f in summary.get("files") or []]
        if files:
            lines.append(f"  - Files changed: {', '.join(files[:20])}" + (" …" if len(files) > 20 else ""))
        if step.final_text:
            lines.append(f"  - It said last: {clip(step.final_text, _SAID)}")
    if plan.branch:
        lines.append("Their changes are already in your working tree.")
    return "\n".join(lines)


__all__ = ["handoff"]
