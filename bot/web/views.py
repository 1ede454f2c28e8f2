"""What the dashboard's JSON says about tasks: plain dicts from the Service's tasks and records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.models import TaskState

if TYPE_CHECKING:
    from core.models import Task
    from core.service import Service

LOG_TAIL_BYTES = 64 * 1024
DIFF_BYTES = 256 * 1024


def task_row(task: Task) -> dict[str, Any]:
    """A line of the task list: state, agent, project, cost so far, times, its parent (plans as trees)."""
    cost = task.cost_usd if task.cost_usd is not None else task.live_cost_usd
    return {
        "id": task.id, "state": task.state.value, "agent": task.agent, "project": task.project or "",
        "text": task.text[:160], "cost": cost, "created_at": task.created_at, "started_at": task.started_at,
        "finished_at": task.finished_at, "duration_s": task.duration_s, "parent": task.parent_id or "",
        "branch": task.branch or "", "landed": task.landed or "",
    }  # fmt: skip


def task_list(service: Service, recent: int = 30) -> list[dict[str, Any]]:
    active, done = service.status(recent=recent)
    waits = service.permission_waits([t.id for t in active if t.state == TaskState.RUNNING])
    rows = []
    for task in [*active, *done]:
        row = task_row(task)
        if task.id in waits:
            request = waits[task.id][0]
            row["asks"] = {"ref": request.ref, "what": _asked(request)}
        rows.append(row)
    return rows


def _asked(request: Any) -> str:
    from core.permission_text import call_shown

    return str(call_shown(request, 200))


def buttons(service: Service, task: Task) -> list[str]:
    """The chat card's buttons that apply to the task now (the roles are checked when one is pressed)."""
    state = task.state
    shown = []
    if state in (TaskState.AWAITING_APPROVAL, TaskState.NEEDS_REVIEW):
        shown += ["approve", "reject"]
    if state in (TaskState.QUEUED, TaskState.AWAITING_APPROVAL, TaskState.RUNNING):
        shown.append("cancel")
    if state.finished:
        shown.append("retry")
    if task.branch and not task.landed and (state.finished or state == TaskState.NEEDS_REVIEW):
        shown.append("merge")
        if service.pull_request_unavailable(task) is None:
            shown.append("pr")
    return shown


def task_detail(service: Service, task_id: str) -> dict[str, Any]:
    """One task: its row, summary, events, the end of its log, decisions, requests waiting, buttons."""
    task = service.show(task_id)
    events = [
        {"seq": e["seq"], "ts": e["ts"], "kind": e["kind"], "text": (e["text"] or "")[:1000]}
        for e in service.store.events(task.id, limit=100_000)
        if e["kind"] not in ("raw", "cost")
    ][-300:]
    try:
        with open(service.log_path(task.id), "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            log = fh.read().decode("utf-8", "replace")
    except OSError:
        log = ""
    asks = [{"ref": r.ref, "what": _asked(r)} for r in service.pending_permissions(task.id)]
    return {
        **task_row(task), "full_text": task.text, "summary": task.summary, "final_text": task.final_text or "",
        "error": task.error or "", "events": events, "log": log, "asks": asks, "buttons": buttons(service, task),
        "approvals": [a.__dict__ for a in service.approvals(task.id)], "pr_url": task.pr_url or "",
    }  # fmt: skip


def task_diff(service: Service, task_id: str) -> dict[str, Any]:
    found = service.branch_diff(task_id)
    patch = found.diff.patch[:DIFF_BYTES].decode("utf-8", "replace")
    return {
        "stat": found.diff.stat,
        "patch": patch,
        "clipped": found.diff.clipped or len(found.diff.patch) > DIFF_BYTES,
    }


__all__ = ["buttons", "task_detail", "task_diff", "task_list", "task_row"]
