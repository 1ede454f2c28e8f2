"""The result recorder: a run's ending, its summary (off the loop) and its record, once.

The state, the cost row and the completion notices of a run commit in one transaction, as a
compare-and-set from ``running``: recorded once, whoever reports the result and however often.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from core.agents.base import AgentResult
from core.files import Outgoing, collect_outbox
from core.launch import discard_launch
from core.models import Task, TaskState
from core.notify import Notifier
from core.permission_text import refusals
from core.protocol import SPEC_FILE, EventKind, task_dir
from core.summary import build_summary
from core.worktrees import commit_run

if TYPE_CHECKING:
    from pathlib import Path

    from core.clock import Clock
    from core.config import Config
    from core.engine.workers import Workers
    from core.store import Store

log = logging.getLogger(__name__)

Finished = Callable[[str, TaskState, dict[str, Any]], None]
"""Called as ``finished(task_id, state, summary)`` after a run's ending is committed."""


@dataclass(frozen=True)
class _Ending:
    """A result about to be recorded: the task as it was read, and how to make its summary."""

    task: Task
    final: TaskState
    result: AgentResult
    finished_at: float
    make_summary: partial[dict[str, Any]]
    collect: Callable[[], Outgoing] = Outgoing
    before: Callable[[], None] | None = None  # a remote task's branch brought back first (``core.hosts.git``)

    def summarize(self) -> dict[str, Any]:
        """The summary, after taking the files the agent left for the chat (``core.files``: before the
        commit, so they are never committed) and committing what it left uncommitted in its worktree."""
        if self.before is not None:
            self.before()
        outgoing = self.collect()
        try:
            commit_run(self.make_summary.keywords.get("baseline"), self.task.id, self.task.text)
            summary = self.make_summary()
        except Exception:
            log.exception("could not summarise %s; it is recorded without its files", self.task.id)
            summary = self.make_summary.func(**{**self.make_summary.keywords, "baseline": None})
        if outgoing.files or outgoing.skipped:
            summary["outbox"] = outgoing.to_dict()
        return summary


class Recorder:
    """Records how runs ended: the task row, the cost, the summary and the notices for the chats.

    ``baselines`` holds the git baseline the dispatcher took for each task it launched (the file
    ``baseline.json`` has it too, for a run that outlives this process).
    """

    def __init__(
        self, config: Config, store: Store, clock: Clock, home: Path, workers: Workers, finished: Finished
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.home = home
        self.workers = workers
        self.finished = finished
        self.baselines: dict[str, dict[str, Any] | None] = {}
        self.bring_back: Callable[[Task], None] | None = None  # set by ``core.hosts.follow`` for remote branches
        self.take_outbox: Callable[[Task], Outgoing] | None = None  # and for remote outboxes

    def task_dir(self, task_id: str) -> Path:
        return task_dir(self.home, task_id)

    def finalize(self, task_id: str, payload: dict[str, Any]) -> bool:
        """Record a run's result once; False if it was already recorded (or it is not running)."""
        ending = self._ending(task_id, payload)
        return ending is not None and self._record(ending, ending.summarize())

    def finalize_soon(self, task_id: str, payload: dict[str, Any], then: Callable[[], object]) -> None:
        """Record a live result, then call ``then``; nothing if it is already recorded.

        Inside the bot's loop the summary (a git diff) is made in a worker thread and recorded back
        on the loop; outside a loop all of it happens at once.
        """
        ending = self._ending(task_id, payload)
        if ending is None:
            return

        def record(summary: dict[str, Any]) -> None:
            self._record(ending, summary)
            then()

        if not self.workers.submit(task_id, ending.summarize, record):
            record(ending.summarize())

    def fail_unstarted(self, task: Task, reason: str) -> None:
        """End a claimed task whose window could not be opened."""
        now = self.clock.now()
        summary = self._summary(task, TaskState.FAILED, AgentResult(status="failed", errors=[reason]), None)()
        with self.store.atomic():
            if not self.store.transition(
                task.id, [TaskState.RUNNING], TaskState.FAILED, finished_at=now, error=reason, updated_at=now,
                summary_json=json.dumps(summary),
            ):  # fmt: skip
                return
            self._queue_notices(task.id, TaskState.FAILED, summary)
        self.finished(task.id, TaskState.FAILED, summary)

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
        before = partial(self.bring_back, task) if self.bring_back and task.remote and task.branch else None
        ending = _Ending(task, final, result, finished_at, self._summary(task, final, result, duration), before=before)
        if task.remote:  # its outbox is on its host: brought here first (``core.hosts.follow``)
            return replace(ending, collect=partial(self.take_outbox, task)) if self.take_outbox else ending
        return replace(ending, collect=self._outbox_of(task_id))

    def _outbox_of(self, task_id: str) -> Callable[[], Outgoing]:
        """How to take what the run left in its ``.orchestra/outbox/`` (nothing for a task never launched)."""
        files, folder = self.config.files, self.task_dir(task_id)
        try:
            cwd = json.loads((folder / SPEC_FILE).read_text(encoding="utf-8")).get("cwd")
        except (OSError, ValueError, AttributeError):
            cwd = None
        if not isinstance(cwd, str) or files.outbox_max_files == 0:
            return Outgoing
        return partial(
            collect_outbox, cwd, folder, max_files=files.outbox_max_files, max_bytes=files.outbox_max_bytes()
        )

    def _record(self, ending: _Ending, summary: dict[str, Any]) -> bool:
        # The state, the cost row and the completion notices commit together: a crash in between
        # would leave a finished task whose result never reaches the chat (finalize runs once).
        with self.store.atomic():
            if not self._finish(ending.task, ending.final, ending.result, ending.finished_at, summary):
                return False
        discard_launch(str(self.task_dir(ending.task.id)))  # normally gone already: the launcher deletes it
        self.finished(ending.task.id, ending.final, summary)
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
        baseline = self.baselines.pop(task.id, None)
        baseline_file = self.task_dir(task.id) / "baseline.json"
        if baseline is None and baseline_file.exists():
            with contextlib.suppress(OSError, ValueError):
                baseline = json.loads(baseline_file.read_text(encoding="utf-8"))
        tools = [e["text"] for e in self.store.events(task.id, kinds=[EventKind.TOOL_USE], limit=20) if e["text"]]
        refused = refusals(self.store.task_permissions(task.id))
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
            refused=refused,
            project=task.project,
        )

    def _queue_notices(self, task_id: str, state: TaskState, summary: dict[str, Any]) -> None:
        """The completion (or review) message for every channel, in the caller's transaction; none for a
        plan's step (its plan's card shows it, and the plan ends in one completion)."""
        notifier = Notifier(self.config, self.store, self.clock)
        if self.store.task_field(task_id, "plan_id"):
            notifier.files_out(task_id, summary.get("outbox"))
            return
        pull_request, no_pr = self._pull_requests(summary)
        notifier.finished(task_id, state, summary, pull_request=pull_request, no_pr=no_pr)
        notifier.files_out(task_id, summary.get("outbox"))  # after the summary: the chat reads it first

    def _pull_requests(self, summary: dict[str, Any]) -> tuple[bool, str]:
        """Whether a task on a branch of its project can open a pull request, and if not, why (empty:
        the project has none set up, which needs no saying)."""
        project = self.config.projects.get(summary.get("project") or "")
        if not summary.get("branch") or project is None or project.pull_requests is None:
            return False, ""
        from core import pulls

        why = pulls.unavailable(project, os.environ, project_name=summary.get("project"))
        return why is None, why or ""

    def channels(self) -> list[str]:
        return self.config.channels()
