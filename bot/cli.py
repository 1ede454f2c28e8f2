"""``orchestra``: the terminal surface. Human output by default, ``--json`` for scripts.

Every error a user can meet is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from bot.app import App, open_app, run_engine
from core.audit import ACTIONS, audit_line
from core.audit import search as audit_search
from core.clock import iso
from core.config import load_config
from core.costs import render_cost_report
from core.errors import OrchestraError, TaskRejected
from core.launch import take_engine_env
from core.models import Task, TaskState
from core.protocol import EventKind
from core.service import Delegation, task_json
from core.store import store_error
from core.summary import format_cost, format_duration, render_phone
from core.tmux import TmuxManager


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"orchestra: {message} (see `orchestra --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="orchestra", description="Delegate coding tasks to AI agent CLIs running in tmux.")
    parser.add_argument("--config", type=Path, help="path to bots.yaml (default: ./bots.yaml, then $ORCHESTRA_HOME)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("delegate", help="route a task to an agent and run it in tmux")
    p.add_argument("--task", "-t", required=True, help="what to do, in plain words ('-' reads stdin)")
    p.add_argument("--agent", "-a", help="run on this agent, whatever the routing says")
    p.add_argument("--cwd", help="working directory for the agent (default: here)")
    p.add_argument("--wait", "-w", action="store_true", help="stay until the task ends and print its summary")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="running, queued and recent tasks")
    p.add_argument("--json", action="store_true")
    p.add_argument("--recent", type=_count, default=10, help="how many finished tasks to list")
    for name, text in (
        ("show", "a task's details and summary"),
        ("peek", "the live pane of a task (or the end of its output)"),
        ("attach", "attach your terminal to the task's tmux window"),
        ("cancel", "stop a task (graceful, then kill)"),
        ("approve", "approve a task waiting for approval or review"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("id")
        if name in ("show", "cancel", "approve"):
            p.add_argument("--json", action="store_true")
    p = sub.add_parser("logs", help="a task's full output log")
    p.add_argument("id")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the task ends")
    p = sub.add_parser("retry", help="run a finished task again, optionally with feedback")
    p.add_argument("id")
    p.add_argument("--feedback", help="appended to the task text for the new attempt")
    p.add_argument("--wait", "-w", action="store_true")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("reject", help="reject a task waiting for approval or review")
    p.add_argument("id")
    p.add_argument("--reason", "-r", default="")
    p.add_argument("--retry", action="store_true", help="after a review, start a new attempt with the reason")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("route", help="show where a task would go, without running it")
    p.add_argument("text")
    p.add_argument("--agent", "-a")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("cost", help="what the agents cost: today, week, month, budgets, breakdowns, savings")
    p.add_argument("--json", action="store_true")
    p.add_argument("--days", type=_days, help="break down the last N days (default: this month)")
    p.add_argument("--all", action="store_true", help="break down all time")
    p.add_argument("--by", choices=["agent", "category", "day", "week", "month"], help="show only this breakdown")
    p = sub.add_parser("budget", help="the budgets in force; `budget day 25` (or off, reset) changes one now")
    p.add_argument("which", nargs="?", choices=["day", "month", "task"], help="the budget to change")
    p.add_argument("value", nargs="?", help="dollars (25, 2.50), off (no budget) or reset (bots.yaml's)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("digest", help="the morning digest, now (shown only: it does not count as sent)")
    p.add_argument("--png", type=Path, metavar="FILE", help="also write its chart of daily cost by agent")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser(
        "audit", help="who did what, when, from where: e.g. `audit t42`, `audit --action cancel --since 1d`"
    )
    p.add_argument("filter", nargs="?", default="", help="a task id, an action, or part of a user or chat")
    p.add_argument("--action", choices=ACTIONS)
    p.add_argument("--since", metavar="AGE", help="only the last 30m, 12h, 1d, 2w, ...")
    p.add_argument("--limit", type=_count, default=50)
    p.add_argument("--json", action="store_true")
    sub.add_parser(
        "doctor", help="check tmux, agent CLIs, config, the data directory, the bot, metrics, chats and outboxes"
    )
    sub.add_parser("health", help="exit 0 when a bot or engine runs for the data directory (container health check)")
    p = sub.add_parser("demo", help="run one real task end to end on the stand-in agent, in a scratch git repo")
    p.add_argument("--task", default="Create User model")
    p = sub.add_parser("config", help="validate bots.yaml and explain it")
    p.add_argument("action", choices=["check"])
    sub.add_parser("engine", help="run the engine in the foreground (started on demand in tmux)")
    sub.add_parser("bot", help="run the bot process: engine plus the configured chat transports")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The error boundary: every error a user can meet ends here as one line on stderr and exit 1."""
    # An on-demand engine's keys, handed over by the process that started it (before the config reads them).
    if (warning := take_engine_env()) is not None:
        print(f"orchestra: {warning}", file=sys.stderr)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            code = 0
        else:
            code = _dispatch(args)
        sys.stdout.flush()  # a reader that went away (`| head`) shows up here, inside the boundary
        return code
    except BrokenPipeError:
        # Nobody reads any more: stop quietly, and keep the interpreter's last flush from complaining.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        line = _error_line(exc)
        if line is None:
            raise  # not an error a user can meet: a bug, and its traceback is what a report needs
        print(f"orchestra: {line}", file=sys.stderr)
        return 1


_OS_ERRORS = {
    errno.ENOSPC: "the disk is full (no space left on the device)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def _error_line(exc: BaseException) -> str | None:
    """The one line for an error a user can meet, or ``None`` for anything else."""
    if isinstance(exc, OrchestraError):
        return " ".join(str(exc).split("\n"))
    if isinstance(exc, sqlite3.Error):
        return str(store_error(exc, Path("orchestra.db")))
    if isinstance(exc, OSError) and exc.errno is not None:
        what = _OS_ERRORS.get(exc.errno, exc.strerror or type(exc).__name__)
        where = f": {exc.filename}" if exc.filename else ""
        return f"{what}{where}"
    return None


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "config":
        return _config_check(args)
    if args.command == "health":
        return _health(args)
    app = open_app(args.config)
    try:
        handler = globals()[f"_cmd_{args.command}"]
        code: int = handler(app, args)
        return code
    except sqlite3.Error as exc:
        raise store_error(exc, app.store.path) from None
    finally:
        app.close()


def _count(text: str) -> int:
    """An argparse type: a whole number from 0 to a million (SQLite takes no bigger)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text} is out of range (0 to 1,000,000)")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 0 < value <= 100_000:  # also NaN
        raise argparse.ArgumentTypeError(f"{text} is out of range (more than 0, at most 100,000 days)")
    return value


def _read_task_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskRejected(
            f"the task text on stdin is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


# -- commands ------------------------------------------------------------------------------------
def _cmd_delegate(app: App, args: argparse.Namespace) -> int:
    text = _read_task_stdin() if args.task == "-" else args.task
    if not args.wait:
        delegation = app.service.delegate(text, agent=args.agent, cwd=args.cwd)
        _print_delegation(delegation, args.json)
        return 0
    return _delegate_and_wait(app, args.json, lambda: app.service.delegate(text, agent=args.agent, cwd=args.cwd))


def _delegate_and_wait(app: App, as_json: bool, make: Any) -> int:
    # Without tmux no engine can start the task: it is stored and queued, and the kick says why.
    if TmuxManager.available() and app.engine.acquire(role="cli"):
        final = asyncio.run(_wait_as_engine(app, make, as_json))
    else:
        delegation = make()
        _print_delegation(delegation, as_json)
        final = _wait_as_client(app, delegation.task.id, as_json)
    if not as_json:
        from bot.console import print_task_messages

        asyncio.run(print_task_messages(app.store, app.clock, final.id))
    else:
        print(_json(task_json(final), ensure_ascii=False))
    return 0 if final.state in (TaskState.SUCCEEDED, TaskState.NEEDS_REVIEW, TaskState.APPROVED) else 1


async def _wait_as_engine(app: App, make: Any, as_json: bool) -> Task:
    engine = app.engine
    await engine.start()
    try:
        delegation: Delegation = make()
        _print_delegation(delegation, as_json)
        task_id = delegation.task.id
        if not as_json:
            engine.listeners.append(lambda tid, kind, data: _progress(tid, kind, data) if tid == task_id else None)
        if delegation.needs_approval and not as_json:
            print(f"waiting for approval: orchestra approve {task_id}", flush=True)
        return await engine.wait_finished(task_id)
    finally:
        still_active = bool(app.store.active_tasks())
        await engine.stop()
        if still_active:
            app.service.start_background_engine()  # hand over the other tasks so none is stranded


def _wait_as_client(app: App, task_id: str, as_json: bool) -> Task:
    last = None
    while True:
        task = app.service.show(task_id)
        if task.state != last and not as_json:
            print(f"  {task.id}: {task.state.value}", flush=True)
            last = task.state
        if task.state.finished:
            return task
        time.sleep(0.2)


def _progress(task_id: str, kind: str, data: dict[str, Any]) -> None:
    if kind == EventKind.STARTED:
        print(f"  {task_id}: running (agent pid {data.get('pid')})", flush=True)
    elif kind in (EventKind.TOOL_USE, EventKind.TEXT) and data.get("display"):
        print(f"  {task_id}: {data['display']}", flush=True)
    elif kind == EventKind.FINISHED:
        print(f"  {task_id}: {data.get('state')}", flush=True)


def _print_delegation(d: Delegation, as_json: bool) -> None:
    task = d.task
    if as_json:
        print(
            _json(
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
    route = f"{task.id} → {task.agent} ({task.category}) · rule {d.decision.rule}"
    print(f"{route} · estimate ${d.estimate_usd:.2f} ({basis})")
    print(f"  {d.decision.reason}")
    if d.needs_approval:
        print(f"  needs approval: {d.approval_reason} — orchestra approve {task.id}")
    elif task.state == TaskState.RUNNING:
        print(f"  running in tmux: orchestra attach {task.id} · orchestra peek {task.id}")
    else:
        print(f"  {task.state.value}; it starts when a slot is free")
    sys.stdout.flush()


def _cmd_status(app: App, args: argparse.Namespace) -> int:
    active, done = app.service.status(recent=args.recent)
    if args.json:
        print(_json({"active": [task_json(t) for t in active], "recent": [task_json(t) for t in done]}))
        return 0
    if not active and not done:
        print('no tasks yet — try: orchestra delegate --task "Create User model" --wait')
        return 0
    now = time.time()
    for title, tasks in (("active", active), ("recent", done)):
        if not tasks:
            continue
        print(f"{title}:")
        for t in tasks:
            if t.state == TaskState.RUNNING and t.started_at:
                when = f"{format_duration(now - t.started_at)} so far"
                cost = format_cost(t.live_cost_usd) if t.live_cost_usd is not None else ""
            else:
                when = format_duration(t.duration_s) if t.finished_at else iso(t.created_at)
                cost = format_cost(t.cost_usd) if t.state.finished else ""
            print(f"  {t.id:<6} {t.state.value:<17} {t.agent:<10} {when:<14} {cost:<14} {_one_line(t.text, 50)}")
    return 0


def _cmd_show(app: App, args: argparse.Namespace) -> int:
    task = app.service.show(args.id)
    if args.json:
        agent = app.config.agents.get(task.agent)
        model = app.store.task_model(task.id) or (agent.model if agent else None)  # reported, else configured
        print(_json({**task_json(task), "model": model}, ensure_ascii=False))
        return 0
    if task.summary:
        print(render_phone(task.summary, state=task.state.value))
    else:
        print(f"{task.id} {task.state.value} · {task.agent} · {task.category}\n{task.text}")
    print(f"\nroute: rule {task.rule} — {task.route_reason}")
    print(f"created {iso(task.created_at)} by {task.requester} via {task.source}; cwd {task.cwd}")
    if task.error:
        print(f"error: {task.error}")
    return 0


def _cmd_peek(app: App, args: argparse.Namespace) -> int:
    print(app.service.peek(args.id))
    return 0


def _cmd_logs(app: App, args: argparse.Namespace) -> int:
    task_id = app.service.get(args.id).id
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


def _cmd_attach(app: App, args: argparse.Namespace) -> int:
    task = app.service.get(args.id)
    if task.id not in app.tmux.windows():
        print(
            f"orchestra: {task.id} is {task.state.value} and has no tmux window; try `orchestra logs {task.id}`",
            file=sys.stderr,
        )
        return 1
    argv = app.tmux.attach_argv(task.id)
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    os.execvpe(argv[0], argv, env)


def _cmd_cancel(app: App, args: argparse.Namespace) -> int:
    task = app.service.cancel(args.id, wait_s=app.config.limits.cancel_grace_s + 5)
    print(_json(task_json(task)) if args.json else f"{task.id} {task.state.value}")
    return 0


def _cmd_retry(app: App, args: argparse.Namespace) -> int:
    if args.wait:
        return _delegate_and_wait(app, args.json, lambda: app.service.retry(args.id, feedback=args.feedback))
    _print_delegation(app.service.retry(args.id, feedback=args.feedback), args.json)
    return 0


def _cmd_approve(app: App, args: argparse.Namespace) -> int:
    task = app.service.approve(args.id)
    print(_json(task_json(task)) if args.json else f"{task.id} {task.state.value}")
    return 0


def _cmd_reject(app: App, args: argparse.Namespace) -> int:
    task = app.service.reject(args.id, reason=args.reason, retry=args.retry)
    print(_json(task_json(task)) if args.json else f"{task.id} {task.state.value}")
    return 0


def _cmd_route(app: App, args: argparse.Namespace) -> int:
    decision = app.service.route(args.text, agent=args.agent)
    if args.json:
        print(_json(decision.to_dict(), ensure_ascii=False))
    else:
        print(f"{decision.agent} ({decision.category}) · rule {decision.rule}\n  {decision.reason}")
    return 0


def _cmd_cost(app: App, args: argparse.Namespace) -> int:
    report = app.service.cost_report(days=args.days, all_time=args.all)
    if args.json:
        print(_json(report.to_dict()))
        return 0
    print(render_cost_report(report, only=args.by))
    return 0


def _cmd_budget(app: App, args: argparse.Namespace) -> int:
    if args.which is not None:
        if args.value is None:
            raise OrchestraError(f"give the new {args.which} budget: an amount, off or reset")
        line = app.service.set_budget(args.which, args.value)
        if not args.json:
            print(f"per-{line.word} budget is now {line.shown()}")
    if args.json:
        print(_json([dataclasses.asdict(line) for line in app.service.budgets()]))
    else:
        print(app.service.budget_report())
    return 0


def _cmd_digest(app: App, args: argparse.Namespace) -> int:
    digest = app.service.digest()
    if args.png is not None:
        from core.digest import render_chart_png

        try:
            args.png.write_bytes(render_chart_png(digest.chart))
        except OSError as exc:
            raise OrchestraError(f"cannot write the chart to {args.png}: {exc.strerror or exc}") from None
    if args.json:
        print(_json({**digest.to_dict(), "chart_png": str(args.png) if args.png else None}, ensure_ascii=False))
        return 0
    print(digest.text)
    if args.png is not None:
        print(f"chart: {args.png}")
    return 0


def _cmd_audit(app: App, args: argparse.Namespace) -> int:
    rows = audit_search(app.store, app.clock.now(), args.filter, action=args.action, since=args.since, limit=args.limit)
    if args.json:
        print(_json(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("nothing in the audit log matches")
    for row in reversed(rows):
        print(audit_line(row))
    return 0


def _cmd_doctor(app: App, args: argparse.Namespace) -> int:
    from bot.doctor import operations_checks

    print(f"config: {app.config_path} (valid)")
    failed = 0
    for what, ok, detail in [*app.service.doctor(), *operations_checks(app)]:
        mark = "NO " if not ok else "-- " if "warning only" in detail else "ok "  # --: worth knowing, not failing
        print(f"  {mark} {what:<24} {detail}")
        failed += 0 if ok else 1
    return 1 if failed else 0


def _cmd_demo(app: App, args: argparse.Namespace) -> int:
    """A real task end to end on the stand-in agent, in a fresh scratch git repository."""
    if "standin" not in app.config.agents:
        print("orchestra: the demo needs the `standin` agent in bots.yaml", file=sys.stderr)
        return 1
    repo = Path(tempfile.mkdtemp(prefix="orchestra-demo-"))
    if shutil.which("git"):
        for cmd in (["init", "-q"], ["config", "user.email", "demo@orchestra.local"], ["config", "user.name", "demo"]):
            subprocess.run(["git", "-C", str(repo), *cmd], check=True)
        (repo / "README.md").write_text("# demo project\n")
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True)
    print(f"demo: scratch repository {repo}")
    decision = app.service.route(args.task)
    print(f"demo: routing says {decision.agent} ({decision.category}); running it on the stand-in agent")
    return _delegate_and_wait(app, False, lambda: app.service.delegate(args.task, agent="standin", cwd=str(repo)))


def _cmd_engine(app: App, args: argparse.Namespace) -> int:
    return asyncio.run(run_engine(app, console=False, idle_exit_s=app.config.limits.engine_idle_exit_s))


def _cmd_bot(app: App, args: argparse.Namespace) -> int:
    if not app.engine.acquire(role="bot"):
        from core.engine import lock_holder, signal_engine

        holder = lock_holder(app.home)
        if holder is not None and holder[1] == "bot":  # never stop a running bot: one line, and leave it be
            print(f"orchestra: a bot is already running for {app.home} (pid {holder[0]})", file=sys.stderr)
            return 1
        # An on-demand engine (or a CLI waiting as one) holds the lock: ask it to hand over, then take it.
        signal_engine(app.home)
        deadline = time.monotonic() + 10
        while not app.engine.acquire(role="bot"):
            if time.monotonic() > deadline:
                print("orchestra: another bot or engine is running for this data directory", file=sys.stderr)
                return 1
            time.sleep(0.1)
    app.engine.release()
    return asyncio.run(run_engine(app, console=True, idle_exit_s=None))


def _health(args: argparse.Namespace) -> int:
    """Cheap on purpose (no store, no agent CLIs): a container runtime calls it every few seconds."""
    from core.engine import engine_running

    config, _ = load_config(args.config)
    if engine_running(config.home()):
        print("healthy: the engine runs")
        return 0
    print("unhealthy: no bot or engine holds the engine lock", file=sys.stderr)
    return 1


def _config_check(args: argparse.Namespace) -> int:
    config, path = load_config(args.config)
    print(f"{path}: valid")
    print(f"  data dir: {config.home()}  ·  tmux: -L {config.tmux.socket_name}, session {config.tmux.session}")
    print(
        f"  limits: {config.limits.max_concurrent} at once, timeout {config.limits.task_timeout_s:g}s, "
        f"per-task cap {format_cost(config.budgets.per_task_usd) if config.budgets.per_task_usd else 'none'}"
    )
    for name, agent in config.agents.items():
        env = ", ".join(f"{k}←${v}" for k, v in agent.env_from.items())
        print(
            f"  agent {name}: {agent.kind} · {agent.command} {' '.join(agent.args)} · max {agent.max_concurrent}"
            + (f" · env {env}" if env else "")
            + ("" if agent.enabled else " · disabled")
        )
    print(
        f"  routing: default {config.routing.default_agent}, {len(config.routing.rules)} rules of yours"
        f"{' + the default rules' if config.routing.use_default_rules else ''}"
    )
    for category, target in config.routing.categories.items():
        print(f"    {category} → {target}")
    return 0


def _json(data: Any, **options: Any) -> str:
    """``--json`` output, floats rounded to 6 decimals: sums of dollars carry float noise (0.037415000000000004)."""
    return json.dumps(_rounded(data), **options)


def _rounded(data: Any) -> Any:
    if isinstance(data, float):
        return round(data, 6) if math.isfinite(data) else data
    if isinstance(data, dict):
        return {key: _rounded(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_rounded(value) for value in data]
    return data


def _one_line(text: str, size: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
