"""What a person reads about a plan: its card (one line per step, edited as it runs), its completion,
the pause that asks what to do, and the terminal's tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.messages import Button, Keyboard
from core.models import Task, TaskState
from core.text import clip, format_cost, format_duration, state_icon

if TYPE_CHECKING:
    from core.store.plans import Plan

DONE = (TaskState.SUCCEEDED, TaskState.APPROVED, TaskState.NEEDS_REVIEW)


def latest_steps(tasks: list[Task]) -> dict[int, Task]:
    """Each step's newest attempt (a failed step retried has two tasks)."""
    latest: dict[int, Task] = {}
    for task in tasks:
        if task.plan_step is not None:
            latest[task.plan_step] = task
    return dict(sorted(latest.items()))


def spent(tasks: list[Task]) -> float:
    return sum(t.cost_usd if t.cost_usd is not None else (t.live_cost_usd or 0.0) for t in tasks)


def progress(plan: Plan, tasks: list[Task]) -> int:
    """Percent done, weighted by the steps' estimates (equal weights without any)."""
    steps = latest_steps(tasks)
    weights = {n: (t.estimate_usd or 0.0) or 1.0 for n, t in steps.items()}
    done = sum(w for n, w in weights.items() if steps[n].state in DONE or n in plan.skipped)
    total = sum(weights.values())
    return round(100 * done / total) if total else 0


def step_line(plan: Plan, task: Task, now: float) -> str:
    icon = "⏭" if task.plan_step in plan.skipped else state_icon(task.state)
    head = f"{icon} {plan.id}.{task.plan_step} {task.step_title or clip(task.text, 50)} · {task.agent}"
    if task.state == TaskState.WAITING:
        return head + (f" (after {', '.join(map(str, task.step_after))})" if task.step_after else "")
    took = (task.finished_at or now) - task.started_at if task.started_at else None
    cost = task.cost_usd if task.cost_usd is not None else task.live_cost_usd
    extra = [format_duration(took)] if took is not None else []
    extra += [format_cost(cost)] if cost is not None else []
    return head + (" · " + " · ".join(extra) if extra else "")


def card_text(plan: Plan, tasks: list[Task], now: float) -> str:
    steps = latest_steps(tasks)
    done = sum(1 for n, t in steps.items() if t.state in DONE or n in plan.skipped)
    estimate = f" (est. {format_cost(plan.estimate_usd)})" if plan.estimate_usd is not None else ""
    state = {"paused": " · ⏸ paused", "cancelled": " · ⏹ cancelled", "failed": " · ❌ failed"}.get(plan.state, "")
    head = (
        f"🗺 {plan.id} · {done}/{len(steps)} steps · {progress(plan, tasks)}% · "
        f"{format_cost(spent(tasks))} so far{estimate}{state}"
    )
    lines = [head, clip(plan.text, 160), *(step_line(plan, t, now) for t in steps.values())]
    if plan.paused and plan.state == "paused":
        lines.append(f"⏸ {plan.paused}")
    return "\n".join(lines)


def route_line(plan: Plan, tasks: list[Task]) -> str:
    """``claude (architecture) → codex (backend) ∥ gemini (frontend) → claude (tests)``."""
    from core.plans import Step, waves

    steps = latest_steps(tasks)
    specs = tuple(Step(t.step_title or "", t.text, t.step_after) for t in steps.values())
    order = list(steps.values())
    return " → ".join(
        " ∥ ".join(f"{order[i - 1].agent} ({order[i - 1].category})" for i in wave) for wave in waves(specs)
    )


def completion_text(plan: Plan, tasks: list[Task]) -> str:
    steps = latest_steps(tasks)
    took = (plan.finished_at or 0) - plan.created_at
    estimate = f" (estimated {format_cost(plan.estimate_usd)})" if plan.estimate_usd is not None else ""
    time_estimate = f" (estimated {format_duration(plan.estimate_s)})" if plan.estimate_s else ""
    head = f"✅ {plan.id} done: {len(steps)} steps · {format_cost(spent(tasks))}{estimate} · "
    lines = [head + f"{format_duration(took)}{time_estimate}", clip(plan.text, 160)]
    for n, task in steps.items():
        said = (task.summary.get("digest") or [""])[0] if task.summary else ""
        mark = "⏭ skipped" if n in plan.skipped else clip(said, 90)
        lines.append(f"{state_icon(task.state)} {plan.id}.{n} {task.step_title} · {task.agent}: {mark}")
    if plan.branch:
        lines.append(f"Branch: {plan.branch} (every step's change) vs {plan.base}")
    return clip("\n".join(lines), 1000, flat=False)


def completion_keyboard(plan: Plan, *, pull_request: bool) -> Keyboard:
    if not plan.branch:
        return ()
    pr = (Button("🔗 Open PR", "pr", plan.id),) if pull_request else ()
    return ((Button("🔀 Merge", "merge", plan.id), *pr, Button("🧾 Diff", "diff", plan.id)),)


def approval_keyboard(plan_id: str) -> Keyboard:
    """A plan held for approval: Approve, Edit (a numbered list in reply replaces it), Cancel."""
    return (
        (
            Button("✅ Approve", "plan_approve", plan_id),
            Button("✏️ Edit", "plan_edit", plan_id),
            Button("⏹ Cancel", "plan_cancel", plan_id),
        ),
    )


def paused_keyboard(plan: Plan, step: int) -> Keyboard:
    ref = f"{plan.id}.{step}"
    return (
        (
            Button("🔁 Retry step", "plan_retry", ref),
            Button("⏭ Skip step", "plan_skip", ref),
            Button("⏹ Cancel plan", "plan_cancel", plan.id),
        ),
    )


def tree_lines(plan: Plan, tasks: list[Task], now: float) -> list[str]:
    """``orchestra status``: the plan, then its steps indented."""
    steps = latest_steps(tasks)
    head = f"{plan.id} {plan.state} · {len(steps)} steps · {progress(plan, tasks)}% · {clip(plan.text, 60)}"
    return [head, *(f"  └ {step_line(plan, t, now)} [{t.id}]" for t in steps.values())]


__all__ = [
    "DONE",
    "approval_keyboard",
    "card_text",
    "completion_keyboard",
    "completion_text",
    "latest_steps",
    "paused_keyboard",
    "progress",
    "route_line",
    "spent",
    "step_line",
    "tree_lines",
]
