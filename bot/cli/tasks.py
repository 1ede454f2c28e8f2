"""The CLI's task commands: delegate, status, show, peek, logs, attach, cancel, retry, approve, reject, route
(the answers to an agent's permission requests are ``bot.cli.permissions``').

Each takes the opened app and the parsed arguments and returns the exit code. The engine, tmux
and asyncio are imported only by the commands that run or wait for a task.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

from bot.cli.output import as_json
from core.errors import TaskRejected
from core.models import Task, TaskState
from core.text import clip, format_cost, format_duration, stamp

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from bot.app import App
    from core.service import Delegation
    from core.store.permissions import PermissionRequest


def delegate(app: App, args: argparse.Namespace) -> int:
    text = _read_task_stdin() if args.task == "-" else (args.task or "")
    from bot.cli import plans

    if getattr(args, "plan", None) == "auto":
        return plans.delegate_auto(app, args, text)
    spec = plans.spec_for(app, args, text)
    if spec is not None:
        return plans.delegate(app, args, spec, text)
    if not text.strip():
        raise TaskRejected("the task text is empty: give --task TEXT (or --plan FILE)")
    host = getattr(args, "host", None)
    if not args.wait:
        delegation = app.service.delegate(text, agent=args.agent, cwd=args.cwd, project=args.project, host=host)
        _print_delegation(delegation, args.json)
        return 0
    return delegate_and_wait(
        app,
        args.json,
        lambda: app.service.delegate(text, agent=args.agent, cwd=args.cwd, project=args.project, host=host),
    )


def _read_task_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskRejected(
            f"the task text on stdin is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def delegate_and_wait(app: App, json_out: bool, make: Callable[[], Delegation]) -> int:
    """Make the task (``make``), wait until it ends, print its summary; exit 0 if it succeeded.

    This process runs the engine itself when it can take the lock, else it waits for the engine that runs.
    """
    import asyncio

    from core.service import task_json

    final = run_and_wait(app, make, json_out)
    if not json_out:
        from bot.console import print_task_messages

        asyncio.run(print_task_messages(app.store, app.clock, final.id))
    else:
        print(as_json(task_json(final), ensure_ascii=False))
    return 0 if final.state in (TaskState.SUCCEEDED, TaskState.NEEDS_REVIEW, TaskState.APPROVED) else 1


def run_and_wait(
    app: App, make: Callable[[], Delegation], json_out: bool, *, announce: Callable[[Delegation], None] | None = None
) -> Task:
    """Make the task and wait until it ends: as the engine when this process can take the lock,
    else as a client of the engine that runs. ``announce`` prints the delegation (default: its
    route and estimate, or its JSON); ``json_out`` also keeps progress lines off stdout."""
    import asyncio

    from core.tmux import TmuxManager

    def said(delegation: Delegation) -> None:
        (announce or (lambda d: _print_delegation(d, json_out)))(delegation)

    # Without tmux no engine can start the task: it is stored and queued, and the kick says why.
    if TmuxManager.available() and app.engine.acquire(role="cli"):
        return asyncio.run(_wait_as_engine(app, make, json_out, said))
    delegation = make()
    said(delegation)
    return _wait_as_client(app, delegation.task.id, json_out)


async def _wait_as_engine(
    app: App, make: Callable[[], Delegation], json_out: bool, announce: Callable[[Delegation], None]
) -> Task:
    engine = app.engine
    await engine.start()
    try:
        delegation = make()
        announce(delegation)
        task_id = delegation.task.id
        if not json_out:
            engine.listeners.append(lambda tid, kind, data: _progress(tid, kind, data) if tid == task_id else None)
        if delegation.needs_approval and not json_out:
            print(f"waiting for approval: orchestra approve {task_id}", flush=True)
        return await engine.wait_finished(task_id)
    finally:
        still_active = bool(app.store.active_tasks())
        await engine.stop()
        if still_active:
            app.service.start_background_engine()  # hand over the other tasks so none is stranded


def _wait_as_client(app: App, task_id: str, json_out: bool) -> Task:
    last = None
    while True:
        task = app.service.show(task_id)
        if task.state != last and not json_out:
            print(f"  {task.id}: {task.state.value}", flush=True)
            last = task.state
        if task.state.finished:
            return task
        time.sleep(0.2)


def _progress(task_id: str, kind: str, data: dict[str, Any]) -> None:
    from core.protocol import EventKind

    if kind == EventKind.STARTED:
        print(f"  {task_id}: running (agent pid {data.get('pid')})", flush=True)
    elif kind in (EventKind.TOOL_USE, EventKind.TEXT) and data.get("display"):
        print(f"  {task_id}: {data['display']}", flush=True)
    elif kind == EventKind.FINISHED:
        print(f"  {task_id}: {data.get('state')}", flush=True)


def _print_delegation(d: Delegation, json_out: bool) -> None:
    from core.service import task_json

    task = d.task
    if json_out:
        print(
            as_json(
                {
                    **task_json(task),
                    "decision": d.decision.to_dict(),
                    "needs_approval": d.needs_approval,
                    "estimate_usd": d.estimate_usd,
                    "estimate_basis": d.estimate_basis,
                },
                ensure_ascii=False,
            )
        )
        return
    basis = f"median of {d.estimate_basis} similar" if d.estimate_basis else "default, no history yet"
    route = f"{task.id} → {task.where}{task.agent} ({task.category}) · rule {d.decision.rule}"
    print(f"{route} · estimate ${d.estimate_usd:.2f} ({basis})")
    print(f"  {d.decision.reason}")
    if d.needs_approval:
        print(f"  needs approval: {d.approval_reason} — orchestra approve {task.id}")
    elif task.state == TaskState.RUNNING:
        print(f"  running in tmux: orchestra attach {task.id} · orchestra peek {task.id}")
    else:
        print(f"  {task.state.value}; it starts when a slot is free")
    sys.stdout.flush()


def status(app: App, args: argparse.Namespace) -> int:
    active, done = app.service.status(recent=args.recent)
    waits = app.service.permission_waits([t.id for t in active])
    if args.json:
        from core.service import task_json

        shown = [{**task_json(t), **_wait_json(waits.get(t.id))} for t in active]
        print(as_json({"active": shown, "recent": [task_json(t) for t in done]}))
        return 0
    if not active and not done:
        print('no tasks yet — try: orchestra delegate --task "Create User model" --wait')
        return 0
    from bot.cli import plans

    if lines := plans.tree(app):
        print("plans:")
        print("\n".join(f"  {line}" for line in lines))
    now = time.time()
    for title, listed in (("active", active), ("recent", done)):
        if not listed:
            continue
        print(f"{title}:")
        for t in listed:
            if t.state == TaskState.RUNNING and t.started_at:
                when = f"{format_duration(now - t.started_at)} so far"
                cost = format_cost(t.live_cost_usd) if t.live_cost_usd is not None else ""
            else:
                when = format_duration(t.duration_s) if t.finished_at else stamp(t.created_at, app.zone)
                cost = format_cost(t.cost_usd) if t.state.finished else ""
            text = f"#{t.project} {t.text}" if t.project else t.text
            text = f"@host:{t.host} {text}" if t.remote else text
            print(f"  {t.id:<6} {t.state.value:<17} {t.agent:<10} {when:<14} {cost:<14} {clip(text, 50)}")
            if t.id in waits:
                print(f"         {_waiting(waits[t.id], now)} · orchestra pending")
    return 0


def _waiting(wait: tuple[PermissionRequest, float], now: float) -> str:
    from core.permission_text import waiting_line

    return waiting_line(*wait, now)


def _wait_json(wait: tuple[PermissionRequest, float] | None) -> dict[str, Any]:
    """``--json``: the request a task waits on (its ref) and since when; nothing for a task not waiting."""
    return {} if wait is None else {"waiting_for_permission": {"ref": wait[0].ref, "since": wait[1]}}


def show(app: App, args: argparse.Namespace) -> int:
    from core.plans import parse_plan_ref
    from core.summary import render_phone

    if parse_plan_ref(args.id) is not None:
        from bot.cli import plans

        return plans.show(app, args.id, args.json)
    task = app.service.show(args.id)
    if args.json:
        from core.service import task_json

        agent = app.config.agents.get(task.agent)
        model = app.store.task_model(task.id) or (agent.model if agent else None)  # reported, else configured
        print(as_json({**task_json(task), "model": model}, ensure_ascii=False))
        return 0
    if task.summary:
        print(render_phone(task.summary, state=task.state.value))
    else:
        print(f"{task.id} {task.state.value} · {task.where}{task.agent} · {task.category}\n{task.text}")
    wait = app.service.permission_waits([task.id]).get(task.id)
    if wait is not None:
        print(f"{_waiting(wait, time.time())} — orchestra allow {wait[0].ref} [--task] · orchestra deny {wait[0].ref}")
    print(f"\nroute: rule {task.rule} — {task.route_reason}")
    project = f"project {task.project}, " if task.project else ""
    project += f"on host {task.host}, " if task.remote else ""
    print(f"created {stamp(task.created_at, app.zone)} by {task.requester} via {task.source}; {project}cwd {task.cwd}")
    if task.branch:
        print(f"branch {task.branch} in {task.worktree}")
    if task.error:
        print(f"error: {task.error}")
    return 0


def peek(app: App, args: argparse.Namespace) -> int:
    print(app.service.peek(args.id))
    return 0


def logs(app: App, args: argparse.Namespace) -> int:
    task = app.service.get(args.id)
    if task.remote:  # the log is on its host: printed (and followed) from there over the shared connection
        from bot.cli.hosts import remote_logs

        return remote_logs(app, task, follow=args.follow)
    task_id = task.id
    path = app.service.log_path(task_id)
    offset = 0
    while True:
        if path.exists():
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
                offset += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", "replace"))
            sys.stdout.flush()
        if not args.follow or app.service.get(task_id).state.finished:
            if not path.exists() and not args.follow:
                print(f"{task_id} has no output yet")
            return 0
        time.sleep(0.3)


def attach(app: App, args: argparse.Namespace) -> int:
    task = app.service.get(args.id)
    if task.remote:
        from bot.cli.hosts import attach_remote

        return attach_remote(app, task)
    if task.id not in app.tmux.windows():
        print(
            f"orchestra: {task.id} is {task.state.value} and has no tmux window; try `orchestra logs {task.id}`",
            file=sys.stderr,
        )
        return 1
    argv = app.tmux.attach_argv(task.id)
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    os.execvpe(argv[0], argv, env)


def cancel(app: App, args: argparse.Namespace) -> int:
    from core.plans import parse_plan_ref
    from core.service import task_json

    if parse_plan_ref(args.id) is not None:
        plan = app.service.cancel_plan(args.id)
        print(f"{plan.id} {plan.state}")
        return 0
    task = app.service.cancel(args.id, wait_s=app.config.limits.cancel_grace_s + 5)
    print(as_json(task_json(task)) if args.json else f"{task.id} {task.state.value}")
    return 0


def retry(app: App, args: argparse.Namespace) -> int:
    from core.plans import parse_plan_ref

    if parse_plan_ref(args.id) is not None:
        again = app.service.retry_step(args.id)
        print(f"{args.id} runs again as {again.id}")
        return 0
    if args.wait:
        return delegate_and_wait(app, args.json, lambda: app.service.retry(args.id, feedback=args.feedback))
    _print_delegation(app.service.retry(args.id, feedback=args.feedback), args.json)
    return 0


def approve(app: App, args: argparse.Namespace) -> int:
    from core.plans import parse_plan_ref
    from core.service import task_json

    if parse_plan_ref(args.id) is not None:
        plan = app.service.approve_plan(args.id)
        print(f"{plan.id} {plan.state}")
        return 0
    task = app.service.approve(args.id)
    print(as_json(task_json(task)) if args.json else f"{task.id} {task.state.value}")
    return 0


def reject(app: App, args: argparse.Namespace) -> int:
    from core.service import task_json

    task = app.service.reject(args.id, reason=args.reason, retry=args.retry)
    print(as_json(task_json(task)) if args.json else f"{task.id} {task.state.value}")
    return 0


def route(app: App, args: argparse.Namespace) -> int:
    decision = app.service.route(args.text, agent=args.agent, project=args.project)
    if args.json:
        print(as_json(decision.to_dict(), ensure_ascii=False))
    else:
        print(f"{decision.agent} ({decision.category}) · rule {decision.rule}\n  {decision.reason}")
    return 0
