"""The engine: dispatches queued tasks into tmux, listens to runners, records results.

Exactly one process at a time is the engine: the one holding ``engine.lock`` in the data
directory (the bot process, ``orchestra engine``, or a CLI that waits for its task). Every
other process only writes the store and pokes the engine over ``engine.sock``.

Runners report each event over that socket as it happens and also append it to the task's
``events.jsonl``; ``reconcile`` replays the files at start, so an engine that was down loses
nothing. Each state change is a compare-and-set in the store, so nothing is recorded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import math
import os
import secrets
import signal
import socket
import sqlite3
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeGuard

from core.agents import adapter_for
from core.agents.base import AgentResult
from core.agents.common import agent_env
from core.clock import Clock
from core.config import Config
from core.launch import discard_launch, write_launch
from core.messages import finished_keyboard
from core.models import RUN_END_STATES, Task, TaskState
from core.store import Store
from core.summary import build_summary, chat_prefix, git_baseline, render_phone
from core.tmux import TmuxManager, WindowInfo, runner_argv

log = logging.getLogger(__name__)
_TASK_FILE = "{task_file}"

Listener = Callable[[str, str, dict[str, Any]], None]
"""Called as ``listener(task_id, kind, data)`` for every ingested event and state change."""

_SWEEP_S = 30.0
_UNREADABLE = "unreadable"
_RESULT_STATES = frozenset(state.value for state in RUN_END_STATES)
_HAS_PROC = Path("/proc/self/cmdline").exists()


class Engine:
    """Owns dispatch and result recording while it holds the engine lock."""

    def __init__(self, config: Config, store: Store, tmux: TmuxManager, clock: Clock, home: Path) -> None:
        self.config = config
        self.store = store
        self.tmux = tmux
        self.clock = clock
        self.home = home
        self.socket_path = home / "engine.sock"
        self.listeners: list[Listener] = []
        self._lock_fd: int | None = None
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._finished: dict[str, asyncio.Event] = {}
        self._baselines: dict[str, dict[str, Any] | None] = {}
        self.redactor = store.redactor  # the store's: one set of known secrets for the files and the tables
        self._unrecorded: dict[str, dict[str, Any]] = {}  # results heard live that the store refused
        self._launches: set[asyncio.Future[Any]] = set()  # launches and summaries in worker threads
        self._launching: set[str] = set()  # their task ids: no window yet, or a result not yet recorded

    # -- ownership --------------------------------------------------------------------------
    def acquire(self, role: str = "engine") -> bool:
        """Take the engine lock; False if another live process holds it.

        The lock file says who holds it, ``PID ROLE``: ``bot``, ``engine`` (on demand) or ``cli``
        (a CLI waiting for its task); see :func:`lock_holder`.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / "engine.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {role}\n".encode())
        self._lock_fd = fd
        return True

    @property
    def owner(self) -> bool:
        return self._lock_fd is not None

    def release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                if self.socket_path.exists():
                    self.socket_path.unlink()
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def task_dir(self, task_id: str) -> Path:
        return self.home / "tasks" / task_id

    # -- serving ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen for runners, reconcile with tmux and the result files, then dispatch."""
        assert self.owner, "acquire() the engine lock first"
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path), limit=64 * 1024 * 1024)
        os.chmod(self.socket_path, 0o600)
        self.reconcile()
        self.dispatch()
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def stop(self) -> None:
        if self._launches:  # let launches in flight record their window (or their failure)
            await asyncio.wait(list(self._launches), timeout=30)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self.release()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        runner_of: str | None = None
        try:
            while line := await reader.readline():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                kind = record.get("t") if isinstance(record, dict) else None
                if kind == "event":
                    event = event_record(record)
                    if event is None:
                        log.warning("skipped a bad event record from a runner: %.200r", line)
                        continue
                    runner_of = event["task"]
                    self._ingest_live(event)
                elif kind == "kick":
                    self.dispatch()
                elif kind == "cancel":
                    self.cancel_running(str(record.get("task", "")))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            runner_of = None  # the engine is stopping; the runner reconnects to the next one
        finally:
            writer.close()
        if runner_of is not None:
            # A runner hung up: normally after its result; if not, it died and must not hang the task.
            asyncio.get_running_loop().call_later(0.5, self._check_hung_up, runner_of)

    def _ingest_live(self, event: dict[str, Any]) -> None:
        """Ingest an event from the socket; a store that cannot write (a full disk) costs it, not the engine."""
        try:
            self.ingest(event)
        except sqlite3.Error as exc:
            log.warning("could not record %s's %s event: %s", event["task"], event["kind"], exc)
            if event["kind"] == "result":  # the runner may not get it on disk either: keep it to record later
                self._unrecorded[event["task"]] = event["data"]

    def _check_hung_up(self, task_id: str) -> None:
        if not self.owner:
            return
        task = self.store.find_task(task_id)
        if task is not None and task.state == TaskState.RUNNING:
            self._settle_one(task, self.tmux.windows(), grace=0.0)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_S)
            try:
                self.sweep()
            except Exception:
                log.exception("sweep failed")

    async def wait_finished(self, task_id: str, timeout: float | None = None) -> Task:
        """Wait until the task's run has ended (or it was cancelled before running)."""
        event = self._finished.setdefault(task_id, asyncio.Event())
        task = self.store.get_task(task_id)
        if not task.state.finished:
            await asyncio.wait_for(event.wait(), timeout)
        return self.store.get_task(task_id)

    def _notify(self, task_id: str, kind: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(task_id, kind, data)
            except Exception:
                log.exception("listener failed for %s", task_id)

    def mark_finished(self, task_id: str) -> None:
        event = self._finished.get(task_id)
        if event is not None:
            event.set()

    # -- dispatch ---------------------------------------------------------------------------
    def dispatch(self) -> list[str]:
        """Start queued tasks, oldest first, within the global and per-agent limits."""
        if not self.owner:
            return []
        running = self.store.list_tasks(states=[TaskState.RUNNING], limit=1_000_000)
        per_agent: dict[str, int] = {}
        for task in running:
            per_agent[task.agent] = per_agent.get(task.agent, 0) + 1
        slots = self.config.limits.max_concurrent - len(running)
        started: list[str] = []
        if slots <= 0:
            return started
        for task in self.store.queued_tasks():
            if slots <= 0:
                break
            agent = self.config.agents.get(task.agent)
            limit = agent.max_concurrent if agent else 1
            if per_agent.get(task.agent, 0) >= limit:
                continue  # this agent is full; later tasks for other agents may still go
            if self._start(task):
                started.append(task.id)
                slots -= 1
                per_agent[task.agent] = per_agent.get(task.agent, 0) + 1
        return started

    def _start(self, task: Task) -> bool:
        """Claim a queued task and launch it; inside a running loop the launch (files, git, tmux:
        subprocesses) runs in a worker thread, so the loop never waits for it. False if not claimed."""
        now = self.clock.now()
        if not self.store.transition(task.id, [TaskState.QUEUED], TaskState.RUNNING, updated_at=now):
            return False
        # When the engine took it from the queue: metrics measure queue wait and dispatch latency from it.
        self._notify(task.id, "dispatched", {"dispatched_at": now, "created_at": task.created_at})
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self._launched(task, *_outcome(self._launch, task, self.store.task_text(task.id)))
        # As it was sent: known secrets put back for the agent (read here: the worker has no store).
        launch = loop.run_in_executor(None, _outcome, self._launch, task, self.store.task_text(task.id))
        self._launching.add(task.id)
        self._launches.add(launch)
        launch.add_done_callback(self._launches.discard)
        launch.add_done_callback(lambda done: self._launched(task, *done.result()))
        return True

    def _launch(self, task: Task, text: str) -> str:
        """Write the task's files, take the git baseline and open its tmux window; the window id.

        Runs off the loop: it touches no store (another thread's connection is not ours to share).
        """
        task_dir = self.task_dir(task.id)
        spec, env = self._spec(task, text)
        write_agent_files(spec.pop("files"))
        task_dir.mkdir(parents=True, exist_ok=True)
        clean = self.redactor.text(text)
        (task_dir / "task.md").write_text(clean, encoding="utf-8", errors="surrogateescape")
        (task_dir / "spec.json").write_text(json.dumps(self.redactor.value(spec), ensure_ascii=False), "utf-8")
        write_launch(
            str(task_dir),
            mode=spec["prompt_mode"],
            task_file=str(task_dir / "task.md") if clean == text else "",  # else the agent reads it from memory
            marker=spec["task_file_marker"],
            env=env,
            secrets=self.redactor.values,
            argv=spec["argv"],
            text=text,
        )
        (task_dir / "cwd").write_bytes(os.fsencode(task.cwd))  # the launcher enters it: tmux never sees it
        baseline = git_baseline(task.cwd, state_paths=spec.get("state_paths"))
        (task_dir / "baseline.json").write_text(json.dumps(baseline), encoding="utf-8")
        self._baselines[task.id] = baseline
        # Only what the launcher itself needs: the agent's environment travels in launch.bin.
        window_env = {k: v for k in ("PATH", "HOME") if (v := os.environ.get(k))}
        return self.tmux.start_window(task.id, runner_argv(task_dir), env=window_env)

    def _launched(self, task: Task, window_id: str | None, error: BaseException | None) -> bool:
        """Back on the engine's thread: record the window, or end a task that could not start."""
        self._launching.discard(task.id)
        if error is not None or window_id is None:
            discard_launch(str(self.task_dir(task.id)))  # no launcher will read its secrets
            log.warning("could not start %s: %s", task.id, self.redactor.text(str(error)))
            self._fail_unstarted(task, f"could not start: {error}")
            return False
        self.store.update_task(task.id, window_id=window_id)
        return True

    def _spec(self, task: Task, text: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The runner's ``spec.json`` (no secret in it once redacted) and the agent's whole environment.

        The environment is built, never inherited: the allowlisted part of ours (``agent_env``,
        plus the agent's ``env_pass`` names), the adapter's and the agent's ``env``, then its ``env_from``.
        """
        settings = self.config.agent_settings(task.agent)
        adapter = adapter_for(settings.kind)
        # {task_file} is the task file's path in the argv template only; typed in the task, it stays
        # text. The template's own becomes a marker of this launch that only the launcher replaces.
        shield, marker = (f"{{task_file-{secrets.token_hex(8)}}}" for _ in range(2))
        invocation = adapter.build(text.replace(_TASK_FILE, shield), settings, resume=self._resume_session(task))
        argv = [a.replace(_TASK_FILE, marker).replace(shield, _TASK_FILE) for a in settings.splice(invocation.argv)]
        spec = {
            "task_id": task.id,
            "agent": task.agent,
            "argv": argv,
            "task_file_marker": marker,
            "env": invocation.env,
            "prompt_mode": invocation.prompt_mode,
            "parser": invocation.parser,
            "files": invocation.files,
            "state_paths": invocation.state_paths,
            "cwd": task.cwd,
            "timeout_s": task.timeout_s,
            "cost_cap_usd": task.cost_cap_usd,
            "cancel_grace_s": self.config.limits.cancel_grace_s,
            "socket": str(self.socket_path),
            "log_max_bytes": self.config.limits.log_max_bytes,
            "events_max_bytes": self.config.limits.events_max_bytes,
            "site_paths": [p for p in sys.path if p and "site-packages" in p],
            "resumed_from": self._session_totals_before(task),
            "configured_model": settings.model,  # priced instead when the model the CLI names has no price
        }
        passed = agent_env(os.environ, self.config.agents[task.agent].env_pass)
        env = {**passed, **invocation.env, **self.config.secret_env(task.agent)}
        return spec, env

    def _resume_session(self, task: Task) -> str | None:
        return task.session_id if task.session_id and task.parent_id else None

    def _session_totals_before(self, task: Task) -> dict[str, Any] | None:
        """The session totals the last run of the resumed session reported ({} if none did)."""
        session = self._resume_session(task)
        if session is None:
            return None
        for run in self.store.session_runs(task.agent, session):
            totals = run.summary.get("session_totals")
            if run.id != task.id and isinstance(totals, dict):
                return totals
        return {}

    def _fail_unstarted(self, task: Task, reason: str) -> None:
        now = self.clock.now()
        summary = self._summary(task, TaskState.FAILED, AgentResult(status="failed", errors=[reason]), None)()
        with self.store.atomic():
            if not self.store.transition(
                task.id, [TaskState.RUNNING], TaskState.FAILED, finished_at=now, error=reason, updated_at=now,
                summary_json=json.dumps(summary),
            ):  # fmt: skip
                return
            self._queue_notices(task.id, TaskState.FAILED, summary)
        self._finished_hooks(task.id, TaskState.FAILED, summary)

    # -- ingest -----------------------------------------------------------------------------
    def ingest(self, record: dict[str, Any], *, replaying: bool = False) -> None:
        """Apply one runner event (live or replayed from disk); repeats are ignored.

        ``record`` has passed ``event_record``: every field has the type used here.
        """
        task_id: str = record["task"]
        kind: str = record["kind"]
        data: dict[str, Any] = record["data"]
        ts = float(record["ts"] or self.clock.now())
        seq: int = record["seq"]
        last = self.store.task_field(task_id, "last_seq")
        if last is not None and seq > int(last) + 1 and not replaying:
            # Events the runner could not send while no engine listened: they are in its file.
            self.replay(task_id)
            return
        if not self.store.add_event(task_id, seq, ts, kind, record["text"][:2000], {} if kind == "result" else data):
            return
        if kind == "started":
            fields: dict[str, Any] = {"started_at": data.get("agent_started_at", ts)}
            if data.get("runner_pid"):
                fields["runner_pid"] = int(data["runner_pid"])
            self.store.update_task(task_id, **fields)
            if (self.task_dir(task_id) / "cancel").exists():
                signal_runner(self.store, self.tmux, task_id)  # a cancel that came before the runner was up
        elif kind == "cost":
            self.store.update_task(task_id, live_cost_usd=float(data.get("cost_usd", 0)))
        elif kind == "usage":
            usage = data.get("usage") or {}
            self.store.update_task(
                task_id,
                input_tokens=int(usage.get("input_tokens", 0)),
                output_tokens=int(usage.get("output_tokens", 0)),
            )
        self._notify(task_id, kind, data)
        if kind == "result":
            if replaying or not self._finalize_off_loop(task_id, data):
                self.finalize(task_id, data)
                self.dispatch()

    def finalize(self, task_id: str, payload: dict[str, Any]) -> bool:
        """Record a run's result once; False if it was already recorded."""
        ending = self._ending(task_id, payload)
        return ending is not None and self._record(ending, ending.summarize())

    def _finalize_off_loop(self, task_id: str, payload: dict[str, Any]) -> bool:
        """Inside the bot's loop, a live result's summary (a git diff) is made in a worker thread
        and recorded back on the loop; False outside a loop (the caller records it at once)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        ending = self._ending(task_id, payload)
        if ending is None:
            return True
        self._launching.add(task_id)  # the sweep leaves it alone until it is recorded

        def recorded(done: asyncio.Future[dict[str, Any]]) -> None:
            self._launching.discard(task_id)
            self._record(ending, done.result())
            self.dispatch()

        summary = loop.run_in_executor(None, ending.summarize)
        self._launches.add(summary)  # stop() waits for it like a launch
        summary.add_done_callback(self._launches.discard)
        summary.add_done_callback(recorded)
        return True

    def _ending(self, task_id: str, payload: dict[str, Any]) -> _Ending | None:
        """What recording a result needs from the store, read here; None if it is not running."""
        task = self.store.find_task(task_id)
        if task is None or task.state != TaskState.RUNNING:
            return None
        result = AgentResult.from_dict(payload.get("result") or {})
        status = TaskState(payload.get("status", "failed"))
        final = TaskState.NEEDS_REVIEW if status == TaskState.SUCCEEDED and task.require_review else status
        finished_at = float(payload.get("exited_at") or self.clock.now())
        started = task.started_at
        duration = finished_at - started if started else None
        return _Ending(task, final, result, finished_at, self._summary(task, final, result, duration))

    def _record(self, ending: _Ending, summary: dict[str, Any]) -> bool:
        # The state, the cost row and the completion notices commit together: a crash in between
        # would leave a finished task whose result never reaches the chat (finalize runs once).
        with self.store.atomic():
            if not self._finish(ending.task, ending.final, ending.result, ending.finished_at, summary):
                return False
        discard_launch(str(self.task_dir(ending.task.id)))  # normally gone already: the launcher deletes it
        self._finished_hooks(ending.task.id, ending.final, summary)
        return True

    def _finish(
        self, task: Task, final: TaskState, result: AgentResult, finished_at: float, summary: dict[str, Any]
    ) -> bool:
        task_id = task.id
        ok = self.store.transition(
            task_id,
            [TaskState.RUNNING],
            final,
            finished_at=finished_at,
            updated_at=self.clock.now(),
            final_text=result.final_text[:20000],
            error="; ".join(result.errors)[:2000],
            exit_code=result.exit_code,
            session_id=result.session_id,
            cost_usd=result.cost_usd,
            cost_source=result.cost_source,
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cache_read_tokens=result.usage.cache_read_tokens,
            cache_write_tokens=result.usage.cache_write_tokens,
            summary_json=json.dumps(summary, ensure_ascii=False),
        )
        if not ok:
            return False
        self.store.record_cost(
            {
                "task_id": task_id,
                "ts": finished_at,
                "agent": task.agent,
                "category": task.category,
                "model": result.model,
                "input_tokens": result.usage.input_tokens,
                "output_tokens": result.usage.output_tokens,
                "cache_read_tokens": result.usage.cache_read_tokens,
                "cache_write_tokens": result.usage.cache_write_tokens,
                "cost_usd": result.cost_usd,
                "source": result.cost_source,
            }
        )
        self._queue_notices(task_id, final, summary)
        return True

    def _summary(
        self, task: Task, state: TaskState, result: AgentResult, duration: float | None
    ) -> partial[dict[str, Any]]:
        """The summary to make, as a call that touches no store (it runs git: a worker may make it)."""
        baseline = self._baselines.pop(task.id, None)
        baseline_file = self.task_dir(task.id) / "baseline.json"
        if baseline is None and baseline_file.exists():
            with contextlib.suppress(OSError, ValueError):
                baseline = json.loads(baseline_file.read_text(encoding="utf-8"))
        tools = [e["text"] for e in self.store.events(task.id, kinds=["tool_use"], limit=20) if e["text"]]
        return partial(
            build_summary,
            task_id=task.id,
            text=task.text,
            status=state.value,
            agent=task.agent,
            category=task.category,
            result=result.to_dict(),
            duration_s=duration,
            log_path=str(self.task_dir(task.id) / "output.log"),
            tool_lines=tools,
            baseline=baseline,
        )

    def _queue_notices(self, task_id: str, state: TaskState, summary: dict[str, Any]) -> None:
        """The completion (or review) message for every channel, in the caller's transaction."""
        kind = "review" if state == TaskState.NEEDS_REVIEW else "completion"
        for channel in self.channels():
            text = render_phone(summary, state=state.value, chat_prefix=self._chat_prefix(channel))
            if channel == "console":
                self.store.enqueue(
                    channel,
                    kind,
                    text,
                    task_id=task_id,
                    dedupe_key=f"{channel}:{task_id}:{kind}:{state}",
                    ts=self.clock.now(),
                )
                continue
            # A chat channel: no chat named, so its delivery sends one copy to each chat it notifies.
            self.store.enqueue_chat(
                channel,
                kind,
                text,
                chat_id=None,
                task_id=task_id,
                buttons=finished_keyboard(task_id, state),
                dedupe_key=f"{channel}:{task_id}:{kind}:{state}",
                ts=self.clock.now(),
            )

    def _finished_hooks(self, task_id: str, state: TaskState, summary: dict[str, Any]) -> None:
        """After the commit: listeners (progress cards, metrics) and anyone waiting on the task."""
        self._notify(task_id, "finished", {"state": state.value, "summary": summary})
        self.mark_finished(task_id)

    def channels(self) -> list[str]:
        return self.config.channels()

    def _chat_prefix(self, channel: str) -> str | None:
        return chat_prefix(channel, self.config.slack.command)

    # -- reconcile and sweep -------------------------------------------------------------------
    def replay(self, task_id: str) -> None:
        """Apply events from the task's events.jsonl that the store has not seen."""
        path = self.task_dir(task_id) / "events.jsonl"
        last = int(self.store.task_field(task_id, "last_seq") or 0)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below; a missing file is the common case
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return
        with fh:
            self._replay_lines(task_id, path, fh, last)

    def _replay_lines(self, task_id: str, path: Path, lines: Iterable[bytes], last: int) -> None:
        for number, raw in enumerate(lines, 1):
            try:
                record = event_record(json.loads(raw))
            except ValueError:
                record = None
            if record is None or record["task"] != task_id:
                if raw.endswith(b"\n"):  # not a line cut short by a crash: say so once per read
                    log.warning("%s line %d is not an event of %s; skipped: %.200r", path, number, task_id, raw)
                continue
            if record["seq"] > last:
                self.ingest(record, replaying=True)

    def reconcile(self) -> None:
        """Bring the store in line with tmux and the runners' files after a (re)start."""
        windows = self.tmux.windows()
        for task in self.store.list_tasks(states=[TaskState.RUNNING], limit=1_000_000):
            self._settle_one(task, windows, grace=0.0, replay=True)

    def sweep(self) -> None:
        """Slow safety net for runners that died without a result (no pane polling)."""
        windows = self.tmux.windows()
        for task in self.store.list_tasks(states=[TaskState.RUNNING], limit=1_000_000):
            self._settle_one(task, windows, grace=5.0)

    def settle_unattended(self, tasks: Iterable[Task]) -> bool:
        """For readers (``status``, ``show``) while no engine runs: end the running tasks that have.

        Cheap: per running task a look for result.json and at the runner's pid in /proc; tmux is
        asked once, only for a task whose runner never reported its pid. True if a task changed.
        While an engine holds the lock this does nothing: recording is its job.
        """
        running = [t for t in tasks if t.state == TaskState.RUNNING]
        if not running or engine_running(self.home):
            return False
        unknown = []
        for task in running:
            alive = self._runner_alive(task.id)
            if alive is None:
                unknown.append(task)
            elif not alive or (self.task_dir(task.id) / "result.json").exists():
                self._settle_one(task, {}, grace=0.0, replay=True)
        if unknown:
            windows = self.tmux.windows()
            for task in unknown:
                self._settle_one(task, windows, grace=0.0, replay=True)
        return any(self.store.task_field(t.id, "state") != TaskState.RUNNING for t in running)

    def record_result(self, task_id: str) -> bool:
        """Catch up with the task's events and record its result.json if it has one.

        True once the task is no longer running. Safe from any process, engine or not: the
        store's compare-and-set records a result once.
        """
        self.replay(task_id)
        task = self.store.find_task(task_id)
        if task is None or task.state != TaskState.RUNNING:
            return task is not None
        payload = self._result_on_disk(task_id)
        if isinstance(payload, dict):
            self.finalize(task_id, payload)
        return bool(self.store.task_field(task_id, "state") != TaskState.RUNNING)

    def end_without_runner(self, task_id: str, state: TaskState, reason: str) -> bool:
        """End a running task whose runner is gone: stop its agent, record the reason once."""
        self._kill_agent(task_id)  # nothing else would ever stop or account for it
        return self.finalize(task_id, {"status": state.value, "result": {"status": "failed", "errors": [reason]}})

    def _settle_one(self, task: Task, windows: dict[str, WindowInfo], *, grace: float, replay: bool = False) -> None:
        # One task's broken files or a bug they trigger must never keep the others from settling.
        try:
            if replay:
                self.replay(task.id)
                if self.store.task_field(task.id, "state") != TaskState.RUNNING:
                    return  # the replayed result finished it
            self._settle(task, windows, grace=grace)
        except Exception:
            log.exception("could not settle %s; the other tasks go on", task.id)

    def _settle(self, task: Task, windows: dict[str, WindowInfo], *, grace: float) -> None:
        if task.id in self._launching:
            return  # its window is being opened right now
        task_dir = self.task_dir(task.id)
        payload = self._result_on_disk(task.id)
        if payload is None and task.id in self._unrecorded:
            payload = self._unrecorded[task.id]
        if isinstance(payload, dict):
            self.replay(task.id)
            self.finalize(task.id, payload)
            self._unrecorded.pop(task.id, None)
            return
        window = windows.get(task.id)
        if window is not None and not window.dead:
            return
        discard_launch(str(task_dir))  # the window is gone: no launcher will ever read its secrets
        if self.clock.now() - float(self.store.task_field(task.id, "updated_at") or 0) < grace:
            return
        if payload == _UNREADABLE:
            self.end_without_runner(task.id, TaskState.FAILED, "its result.json could not be read")
            return
        if not (task_dir / "events.jsonl").exists():
            # The window never came up: the task never ran, so it can safely go back in the queue.
            if self.store.transition(task.id, [TaskState.RUNNING], TaskState.QUEUED, updated_at=self.clock.now()):
                log.warning("%s never started; queued again", task.id)
            return
        stopped = not windows and not self.tmux.server.is_alive()  # asked only for a runner that vanished
        reason = "its tmux server stopped" if stopped else "the runner vanished without a result"
        self.end_without_runner(task.id, TaskState.FAILED, reason)

    def _result_on_disk(self, task_id: str) -> dict[str, Any] | str | None:
        """The task's result.json if valid; None when there is none; ``_UNREADABLE`` when broken."""
        path = self.task_dir(task_id) / "result.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read %s: %s", path, exc)
            return _UNREADABLE
        try:
            payload = result_payload(json.loads(text))
        except ValueError:
            payload = None
        if payload is None:
            log.warning("%s is not a result; skipped: %.200r", path, text)
            return _UNREADABLE
        return payload

    def _runner_alive(self, task_id: str) -> bool | None:
        """Whether the task's runner still runs; None when it has not reported its pid yet."""
        pid = self.store.task_field(task_id, "runner_pid")
        if not pid:
            return None
        if _HAS_PROC:  # the pid's command line names the task dir, so a reused pid is not mistaken for it
            try:
                return str(self.task_dir(task_id)).encode() in Path(f"/proc/{int(pid)}/cmdline").read_bytes()
            except FileNotFoundError:
                return False
            except OSError:
                pass
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def _kill_agent(self, task_id: str) -> None:
        """Kill the process group of a task's agent (the runner starts it in its own session)."""
        for event in self.store.events(task_id, kinds=["started"], limit=1):
            pid = event["data"].get("pid")
            if isinstance(pid, int) and pid > 1:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)

    # -- cancel -----------------------------------------------------------------------------
    def cancel_running(self, task_id: str) -> bool:
        """Ask a running task's runner to stop its agent (it ends the task as cancelled)."""
        task = self.store.find_task(task_id)
        if task is None or task.state != TaskState.RUNNING:
            return False
        return request_cancel(self.store, self.tmux, self.home, task_id)


def event_record(obj: Any) -> dict[str, Any] | None:
    """A runner event with every field of the type the engine uses, or None when it is not one.

    The one check for records from the socket and from events.jsonl alike: a line that is valid
    JSON but no event (``123``, ``[]``, ``{"seq": "x9"}``) is skipped, never raised on.
    """
    if not isinstance(obj, dict):
        return None
    task, seq, kind, ts = obj.get("task"), obj.get("seq"), obj.get("kind"), obj.get("ts")
    text, data = obj.get("text", ""), obj.get("data") or {}
    if not (isinstance(task, str) and task and _is_int(seq) and seq > 0 and isinstance(kind, str) and kind):
        return None
    if not (isinstance(text, str) and isinstance(data, dict) and (ts is None or _is_number(ts))):
        return None
    checks: dict[str, tuple[str, ...]] = {
        "started": ("agent_started_at", "runner_pid", "pid"),
        "cost": ("cost_usd",),
    }
    if any(data.get(key) is not None and not _is_number(data[key]) for key in checks.get(kind, ())):
        return None
    if kind == "cost" and data.get("cost_usd") is None:
        return None
    if kind == "started" and data.get("runner_pid") is not None and not _is_int(data["runner_pid"]):
        return None
    if kind == "usage":
        usage = data.get("usage") or {}
        if not isinstance(usage, dict) or not all(_is_int(usage.get(k, 0)) for k in ("input_tokens", "output_tokens")):
            return None
    if kind == "result" and result_payload(data) is None:
        return None
    return {"task": task, "seq": seq, "kind": kind, "ts": ts, "text": text, "data": data}


def result_payload(obj: Any) -> dict[str, Any] | None:
    """A runner's result (result.json, or the data of its ``result`` event), or None when broken."""
    if not isinstance(obj, dict) or obj.get("status", "failed") not in _RESULT_STATES:
        return None
    result = obj.get("result") or {}
    exited_at = obj.get("exited_at")
    if not isinstance(result, dict) or not (exited_at is None or _is_number(exited_at)):
        return None
    usage = result.get("usage") or {}
    lists = [result.get(k, []) for k in ("errors", "permission_denials")]
    optional_text = [result.get(k) for k in ("session_id", "model")]
    if not (
        isinstance(usage, dict)
        and all(_is_int(v) for v in usage.values())
        and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists)
        and all(v is None or isinstance(v, str) for v in optional_text)
        and (result.get("cost_usd") is None or _is_number(result["cost_usd"]))
        and (result.get("exit_code") is None or _is_int(result["exit_code"]))
        and isinstance(result.get("final_text", ""), str)
    ):
        return None
    return obj


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class _Ending:
    """A result about to be recorded: the task as it was read, and how to make its summary."""

    task: Task
    final: TaskState
    result: AgentResult
    finished_at: float
    make_summary: partial[dict[str, Any]]

    def summarize(self) -> dict[str, Any]:
        try:
            return self.make_summary()
        except Exception:
            log.exception("could not summarise %s; it is recorded without its files", self.task.id)
            return self.make_summary.func(**{**self.make_summary.keywords, "baseline": None})


def _outcome(launch: Callable[[Task, str], str], task: Task, text: str) -> tuple[str | None, BaseException | None]:
    """``launch(task, text)`` as a value: a start that fails ends the task, it never hangs it."""
    try:
        return launch(task, text), None
    except Exception as exc:  # noqa: BLE001
        return None, exc


def write_agent_files(files: dict[str, str]) -> None:
    """Write an invocation's config files (no secrets in them), each replaced atomically.

    Agents of one name share their config dir, so two tasks starting at once may write the same
    file; writing a temporary file and renaming it means a CLI never reads a half-written one.
    """
    for name, content in files.items():
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.replace(tmp, path)


def request_cancel(store: Store, tmux: TmuxManager, home: Path, task_id: str) -> bool:
    """Leave a cancel mark for the runner and signal it if it is up; False if it is gone.

    The mark covers a cancel that lands before the runner has installed its signal handlers:
    the runner checks it once it is ready, and the engine re-signals when ``started`` arrives.
    """
    task_dir = home / "tasks" / task_id
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "cancel").touch()
    if store.task_field(task_id, "runner_pid"):
        return signal_runner(store, tmux, task_id)
    return task_id in tmux.windows() or (task_dir / "result.json").exists()


def signal_runner(store: Store, tmux: TmuxManager, task_id: str, sig: int = signal.SIGTERM) -> bool:
    """Send a signal to the task's runner; the runner stops the agent gracefully, then kills it."""
    pid = store.task_field(task_id, "runner_pid")
    if not pid:
        return False
    try:
        os.kill(int(pid), sig)
    except ProcessLookupError:
        return False
    return True


def poke(socket_path: Path, record: dict[str, Any]) -> bool:
    """Send one line to a running engine; False when none is listening."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(socket_path))
            sock.sendall((json.dumps(record) + "\n").encode())
        return True
    except OSError:
        return False


def engine_running(home: Path) -> bool:
    """True when some process holds the engine lock."""
    path = home / "engine.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


__all__ = ["RUN_END_STATES", "Engine", "engine_running", "lock_holder", "poke", "signal_runner"]


def lock_holder(home: Path) -> tuple[int, str] | None:
    """``(pid, role)`` of the process holding the engine lock, None when none does.

    The role is what it wrote when it took the lock; ``""`` for a file without one (an older version).
    """
    if not engine_running(home):
        return None
    try:
        words = (home / "engine.lock").read_text().split()
        return int(words[0]) if words else 0, words[1] if len(words) > 1 else ""
    except (OSError, ValueError):
        return 0, ""


def signal_engine(home: Path, sig: int = signal.SIGTERM) -> bool:
    """Ask the process holding the engine lock to stop (used to hand over to the bot process)."""
    try:
        words = (home / "engine.lock").read_text().split()
        pid = int(words[0]) if words else 0
    except (OSError, ValueError):
        return False
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True
