"""The Orchestra service: the one way in for every surface (CLI, console, Telegram, Slack).

Surfaces translate text and buttons into these calls and render what comes back; they hold no
business logic. Every call that changes something is audited with who, what and from where.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.agents.common import agent_env
from core.clock import Clock
from core.config import Config, agent_installed
from core.costs import (
    BUDGET_NAMES,
    BudgetLine,
    CostReport,
    CostTracker,
    cost_report,
    effective_budgets,
    render_budgets,
)
from core.digest import Digest, build_digest
from core.engine import Engine, engine_running, poke, request_cancel
from core.errors import AgentUnavailable, InvalidInput, InvalidTransition, TaskRejected, TmuxError, UnknownTask
from core.launch import ENGINE_ENV, discard, write_engine_env
from core.messages import card_keyboard
from core.models import ACTIVE_STATES, Task, TaskState
from core.protocol import EventKind, kick_message
from core.routing import RouteDecision, Router, Rule, leading_mention, load_default_rules, parse_override
from core.store import Store
from core.summary import format_cost
from core.tmux import TmuxManager


@dataclass(frozen=True)
class Actor:
    """Who asked, and from where (``cli``, ``console``, ``telegram``, ``slack``)."""

    name: str = "local"
    source: str = "cli"
    where: str = ""  # for the audit: the chat and user it came from (``chat 111 user 111``)
    ref: str = ""  # the chat update that asked: a task it created is found again, never created twice
    chat: str = ""  # the chat it came from, which gets the task's card (notices need not go there again)


LOCAL = Actor()


@dataclass(frozen=True)
class Delegation:
    task: Task
    decision: RouteDecision
    estimate_usd: float
    estimate_basis: int
    needs_approval: bool
    approval_reason: str


def build_router(config: Config, *, available: Any = None) -> Router:
    rules = [
        Rule(r.name, r.pattern, r.category, r.agent, r.require_approval, r.require_review) for r in config.routing.rules
    ]
    if config.routing.use_default_rules:
        rules += load_default_rules()
    cache: dict[str, bool] = {}

    def is_available(agent: str) -> bool:
        if agent not in config.agents or not config.agents[agent].enabled:
            return False
        if agent not in cache:
            cache[agent] = agent_installed(config.agents[agent].command)
        return cache[agent]

    return Router(
        rules,
        category_agents=config.routing.categories,
        default_agent=config.routing.default_agent,
        default_category=config.routing.default_category,
        is_available=available or is_available,
    )


class Service:
    """Business operations over the store, the router, tmux and (when it owns it) the engine."""

    def __init__(
        self,
        config: Config,
        store: Store,
        tmux: TmuxManager,
        clock: Clock,
        home: Path,
        *,
        engine: Engine | None = None,
        router: Router | None = None,
        autostart_engine: bool = True,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.tmux = tmux
        self.clock = clock
        self.home = home
        self.engine = engine
        self._router = router
        self.autostart_engine = autostart_engine
        self.config_path = config_path

    @property
    def router(self) -> Router:
        """Built on first use: compiling the rules is the slowest part of a CLI start."""
        if self._router is None:
            self._router = build_router(self.config)
        return self._router

    # -- delegate ---------------------------------------------------------------------------
    def route(self, text: str, *, agent: str | None = None) -> RouteDecision:
        """Where ``text`` would go, with the approval and review the policy adds to the rules'."""
        _check_text(text)
        override, body = parse_override(text, self.config.agents.keys())
        known = ", ".join(sorted(self.config.agents))
        if override is None and (mention := leading_mention(text)) is not None:
            raise AgentUnavailable(mention, message=f"unknown agent @{mention}; agents: {known}")
        chosen = agent or override
        if chosen is not None and chosen not in self.config.agents:
            raise AgentUnavailable(chosen, message=f"unknown agent {chosen!r} (configured: {known})")
        decision = self.router.route(body, override=chosen)
        policy = self.config.policy
        approval = decision.category in policy.approval_for and not decision.require_approval
        review = decision.category in policy.review_for and not decision.require_review
        if not (approval or review):
            return decision
        reason = decision.reason.removesuffix(".")
        reason += f"; {decision.category} tasks need approval (policy)" if approval else ""
        reason += f"; {decision.category} tasks need review (policy)" if review else ""
        return dataclasses.replace(
            decision, reason=reason + ".", require_approval=True if approval else decision.require_approval,
            require_review=True if review else decision.require_review,
        )  # fmt: skip

    def delegate(
        self,
        text: str,
        *,
        agent: str | None = None,
        cwd: str | None = None,
        actor: Actor = LOCAL,
        parent: Task | None = None,
    ) -> Delegation:
        """Route, estimate, apply the approval policy and queue a task; start it if a slot is free.

        A chat update handled again (after a crash) gets the task it created the first time.
        """
        if actor.ref and (done := self.store.task_by_source(actor.ref)) is not None:
            return self._delegation_of(done)
        body = text.strip()
        if not body:
            raise TaskRejected("the task text is empty")
        limit = self.config.limits.max_task_chars
        if len(body) > limit:
            raise TaskRejected(f"the task text has {len(body):,} characters; the limit is {limit:,}")
        decision = self.route(body, agent=agent)
        override, stripped = parse_override(body, self.config.agents.keys())
        if override is not None:
            body = stripped
            if not body:
                raise TaskRejected(f"nothing to do: say what @{override} should do after its name")
        workdir = self._workdir(cwd)
        estimate, basis = self.estimate(decision.agent, decision.category)
        needs, why = self._needs_approval(decision, estimate)
        review = decision.require_review or decision.category in self.config.policy.review_for
        now = self.clock.now()
        # The task, its route, its audit line and its approval request commit together.
        with self.store.atomic():
            task = self.store.create_task(
                {
                    "text": body,
                    "agent": decision.agent,
                    "category": decision.category,
                    "rule": decision.rule,
                    "route_reason": decision.reason,
                    "state": TaskState.AWAITING_APPROVAL if needs else TaskState.QUEUED,
                    "cwd": workdir,
                    "requester": actor.name,
                    "source": actor.source,
                    "created_at": now,
                    "queued_at": now,
                    "timeout_s": self.config.limits.task_timeout_s,
                    "cost_cap_usd": effective_budgets(self.config, self.store).per_task_usd,
                    "estimate_usd": estimate,
                    "estimate_basis": basis,
                    "require_review": int(review),
                    "parent_id": parent.id if parent else None,
                    "session_id": parent.session_id if parent else None,
                    "source_ref": actor.ref or None,
                }
            )
            self.store.record_route(
                {
                    "task_id": task.id,
                    "ts": now,
                    "category": decision.category,
                    "agent": decision.agent,
                    "rule": decision.rule,
                    "reason": decision.reason,
                    "override": agent or override,
                }
            )
            routed = f"{decision.agent}/{decision.category} rule={decision.rule}"
            self._audit(
                actor, "delegate", task.id, routed + (f" override=@{agent or override}" if agent or override else "")
            )
            if needs:
                self._request_approval(task, actor, why)
        if not needs:
            try:
                self.kick()
            except TmuxError as exc:  # stored and queued: it starts when an engine can open its window
                raise TmuxError(
                    f"{task.id} is queued but cannot start: {exc}; once it is, `orchestra engine` starts it"
                ) from None
        return Delegation(self.store.get_task(task.id), decision, estimate, basis, needs, why)

    def _delegation_of(self, task: Task) -> Delegation:
        decision = RouteDecision(task.agent, task.category, task.rule, task.route_reason)
        estimate = task.estimate_usd if task.estimate_usd is not None else 0.0
        waiting = task.state == TaskState.AWAITING_APPROVAL
        return Delegation(task, decision, estimate, task.estimate_basis, waiting, "")

    def estimate(self, agent: str, category: str) -> tuple[float, int]:
        """Median cost of this agent on this category so far, with how many tasks it rests on."""
        median, count = self.store.median_cost(agent, category)
        if median is None:
            return self.config.budgets.default_estimate_usd, 0
        return median, count

    def _needs_approval(self, decision: RouteDecision, estimate: float) -> tuple[bool, str]:
        """(needs approval, why); raises ``BudgetExceeded`` when a spent budget refuses new tasks."""
        over_budget, why = CostTracker(self.store, self.config, self.clock).admission()
        if over_budget:
            return True, why
        policy = self.config.policy
        if decision.category in policy.approval_for:
            return True, f"{decision.category} tasks need approval"
        if decision.require_approval:
            return True, f"rule {decision.rule} asks for approval"
        if policy.approve_above_usd is not None and estimate > policy.approve_above_usd:
            return True, f"estimated ${estimate:.2f} is above ${policy.approve_above_usd:.2f}"
        return False, ""

    def _request_approval(self, task: Task, actor: Actor, why: str) -> None:
        """Ask every notification channel; the chat the task came from already has the card."""
        asked = f"🔐 {task.id} needs approval · {task.agent} · {task.category}\n{task.text[:300]}\nWhy: {why}"
        text = f"{asked}\nApprove: orchestra approve {task.id} · Reject: orchestra reject {task.id}"
        now = self.clock.now()
        for channel in self._channels():
            key = f"{channel}:{task.id}:approval:start"
            if channel == "console":
                self.store.enqueue(channel, "approval", text, task_id=task.id, dedupe_key=key, ts=now)
            else:  # every chat it notifies, the task's own channel too, but not the chat showing the card
                buttons = card_keyboard(task.id, TaskState.AWAITING_APPROVAL)
                shown = {"shown_in": [actor.chat]} if channel == actor.source and actor.chat else None
                # In a chat the buttons ask; the terminal's commands are for the console.
                self.store.enqueue_chat(
                    channel, "approval", asked, chat_id=None, task_id=task.id, buttons=buttons, dedupe_key=key, ts=now,
                    payload=shown,
                )  # fmt: skip

    def _workdir(self, cwd: str | None) -> str:
        chosen = cwd or self.config.workspace or os.getcwd()
        path = Path(chosen).expanduser()
        if not path.is_dir():
            raise TaskRejected(f"working directory {chosen!r} does not exist")
        return str(path.resolve())

    # -- queries ----------------------------------------------------------------------------
    def get(self, task_id: str) -> Task:
        task = self.store.find_task(task_id)
        if task is None:
            raise UnknownTask(task_id)
        return task

    def show(self, task_id: str) -> Task:
        """The task as it really is: with no engine up, a run that ended is recorded on read."""
        task = self.get(task_id)
        if self._settle_unattended([task]):
            task = self.get(task.id)
        return task

    def status(self, *, recent: int = 10) -> tuple[list[Task], list[Task]]:
        """Active tasks (oldest first) and the most recently created finished ones.

        With no engine up, runs that ended meanwhile are recorded first, so none shows running for ever.
        """
        active = self.store.active_tasks()
        if self._settle_unattended(active):
            active = self.store.active_tasks()
        done = [t for t in self.store.list_tasks(limit=recent + len(active)) if t.state.finished][:recent]
        return active, done

    def events(self, task_id: str, limit: int = 200) -> list[dict[str, Any]]:
        self.get(task_id)
        return self.store.events(task_id, limit=limit)

    def log_path(self, task_id: str) -> Path:
        return self.home / "tasks" / self.get(task_id).id / "output.log"

    def peek(self, task_id: str, lines: int = 30) -> str:
        """The live pane of a running task, else the end of its log."""
        task = self.get(task_id)
        if task.state == TaskState.RUNNING and task.id in self.tmux.windows():
            return self.tmux.capture(task.id, lines)
        shown = [
            e["text"]
            for e in self.store.events(task.id, limit=100_000)
            if e["kind"] not in (EventKind.RAW, EventKind.COST)
        ]
        if shown:
            return "\n".join(shown[-lines:])
        return f"{task.id} is {task.state.value}; nothing to show yet"

    def costs(self, since: float = 0.0) -> dict[str, Any]:
        return self.store.cost_totals(since)

    def budgets(self) -> list[BudgetLine]:
        """Each budget an admin can change: in force now, where it comes from, what bots.yaml says."""
        overrides = self.store.budget_overrides()
        lines = []
        for word, name in BUDGET_NAMES.items():
            configured = getattr(self.config.budgets, name)
            value, set_by, set_at = overrides.get(name, (configured, "", 0.0))
            lines.append(BudgetLine(word, name, value, configured, set_by, set_at))
        return lines

    def set_budget(self, word: str, value: str, *, actor: Actor = LOCAL) -> BudgetLine:
        """Change a budget at run time: a dollar amount, ``off`` (no budget) or ``reset`` (bots.yaml's)."""
        name = BUDGET_NAMES.get(word.lower())
        if name is None:
            raise InvalidInput(f"unknown budget {word!r}: use task, day or month")
        before = next(b for b in self.budgets() if b.name == name)
        text = value.strip().lower().removeprefix("$")
        if text == "reset":
            self.store.clear_budget_override(name)
        else:
            amount = None if text in ("off", "none") else _amount(text)
            self.store.set_budget_override(name, amount, actor.name, self.clock.now())
        after = next(b for b in self.budgets() if b.name == name)
        self._audit(actor, "budget", None, f"{word} {before.shown()} → {after.shown()}")
        return after

    def budget_report(self) -> str:
        tracker = CostTracker(self.store, self.config, self.clock)
        return render_budgets(self.budgets(), tracker.budgets(), tracker.tz)

    def cost_report(self, *, days: float | None = None, all_time: bool = False) -> CostReport:
        """Spend today, this week and month against the budgets, breakdowns and savings (`/cost`)."""
        return cost_report(CostTracker(self.store, self.config, self.clock), days=days, all_time=all_time)

    def digest(self) -> Digest:
        """The digest as it would be sent now (`/digest`); shows it without recording it as sent."""
        return build_digest(self.store, self.config, self.clock)

    # -- actions ----------------------------------------------------------------------------
    def cancel(self, task_id: str, *, actor: Actor = LOCAL) -> Task:
        task = self.get(task_id)
        now = self.clock.now()
        if task.state in (TaskState.QUEUED, TaskState.AWAITING_APPROVAL):
            with self.store.atomic():
                moved = self.store.transition(
                    task.id,
                    [TaskState.QUEUED, TaskState.AWAITING_APPROVAL],
                    TaskState.CANCELLED,
                    finished_at=now,
                    updated_at=now,
                    error="cancelled before it started",
                )
                if moved:
                    self._audit(actor, "cancel", task.id, f"was {task.state.value}")
            if moved:
                if self.engine is not None:
                    self.engine.mark_finished(task.id)
                return self.get(task.id)
        if task.state == TaskState.RUNNING and self._recorded_from_disk(task.id):
            raise InvalidTransition(self._finished_before_cancel(task.id))
        if task.state != TaskState.RUNNING:
            raise InvalidTransition(f"{task.id} is {task.state.value}; only queued or running tasks can be cancelled")
        self._audit(actor, "cancel", task.id, "was running")
        if not request_cancel(self.store, self.tmux, self.home, task.id):
            self._cancel_orphan(task)
        return self.get(task.id)

    def _recorded_from_disk(self, task_id: str) -> bool:
        """A result the runner wrote while no engine listened wins over a cancel that comes after it."""
        return self.engine is not None and self.engine.record_result(task_id)

    def _finished_before_cancel(self, task_id: str) -> str:
        task = self.get(task_id)
        cost = f", {format_cost(task.cost_usd)}" if task.cost_usd is not None else ""
        return f"{task.id} had already finished before the cancel: {task.state.value.replace('_', ' ')}{cost}"

    def _cancel_orphan(self, task: Task) -> None:
        with contextlib.suppress(Exception):
            self.tmux.kill(task.id)
        if self._recorded_from_disk(task.id):
            raise InvalidTransition(self._finished_before_cancel(task.id))  # its result landed meanwhile
        if self.engine is not None:
            self.engine.end_without_runner(task.id, TaskState.CANCELLED, "cancelled; its runner was gone")
            return
        now = self.clock.now()
        self.store.transition(
            task.id,
            [TaskState.RUNNING],
            TaskState.CANCELLED,
            finished_at=now,
            updated_at=now,
            error="cancelled; its runner was gone",
        )

    def cancel_all(self, *, actor: Actor = LOCAL) -> list[str]:
        cancelled = []
        for task in self.store.active_tasks():
            with contextlib.suppress(InvalidTransition):
                self.cancel(task.id, actor=actor)
                cancelled.append(task.id)
        self._audit(actor, "kill", None, "cancelled " + (", ".join(cancelled) or "nothing"))
        return cancelled

    def retry(self, task_id: str, *, feedback: str | None = None, actor: Actor = LOCAL) -> Delegation:
        """Run a finished task again (same agent, same session where the CLI can resume)."""
        if actor.ref and (done := self.store.task_by_source(actor.ref)) is not None:
            return self._delegation_of(done)  # this retry was made already; the update is handled again
        task = self.get(task_id)
        if not task.state.finished:
            raise InvalidTransition(f"{task.id} is {task.state.value}; wait for it to finish or cancel it first")
        original = self.store.task_text(task.id)  # the known secrets it held are stored as names only
        text = original if not feedback else f"{original}\n\nFeedback on the previous attempt: {feedback}"
        self._audit(actor, "retry", task.id, feedback or "")
        return self.delegate(text, agent=task.agent, cwd=task.cwd, actor=actor, parent=task)

    def approve(self, task_id: str, *, actor: Actor = LOCAL) -> Task:
        task = self.get(task_id)
        now = self.clock.now()
        gate, to = {
            TaskState.AWAITING_APPROVAL: ("start", TaskState.QUEUED),
            TaskState.NEEDS_REVIEW: ("review", TaskState.APPROVED),
        }.get(task.state, ("", task.state))
        with self.store.atomic():  # the decision and who made it, together ("already approved by @x")
            moved = bool(gate) and self.store.transition(task.id, [task.state], to, updated_at=now)
            if moved:
                self.store.record_approval(task.id, gate, "approved", actor.name, "", now)
                self._audit(actor, "approve", task.id, gate)
        if not moved:
            raise InvalidTransition(self._already(task_id, "approve"))
        if gate == "start":
            self.kick()
        return self.get(task.id)

    def reject(self, task_id: str, *, reason: str = "", retry: bool = False, actor: Actor = LOCAL) -> Task:
        """Reject before start or after review; with ``retry`` a review rejection starts a new attempt."""
        task = self.get(task_id)
        now = self.clock.now()
        gate = {TaskState.AWAITING_APPROVAL: "start", TaskState.NEEDS_REVIEW: "review"}.get(task.state)
        with self.store.atomic():
            moved = gate is not None and self.store.transition(
                task.id, [task.state], TaskState.REJECTED, updated_at=now, error=reason or "rejected"
            )
            if moved and gate is not None:
                self.store.record_approval(task.id, gate, "rejected", actor.name, reason, now)
                self._audit(actor, "reject", task.id, reason)
        if not moved:
            raise InvalidTransition(self._already(task_id, "reject"))
        if gate == "start" and self.engine is not None:
            self.engine.mark_finished(task.id)
        if retry and gate == "review":
            self.retry(task.id, feedback=reason or None, actor=actor)
        return self.get(task.id)

    def _already(self, task_id: str, action: str) -> str:
        task = self.get(task_id)
        decisions = self.store.approvals(task.id)
        if decisions:
            last = decisions[-1]
            when = time.strftime("%H:%M", time.localtime(last["ts"]))
            return f"{task.id} was already {last['decision']} by {last['actor']} at {when}"
        return f"{task.id} is {task.state.value}; there is nothing to {action}"

    # -- engine ------------------------------------------------------------------------------
    def _settle_unattended(self, tasks: list[Task]) -> bool:
        if self.engine is None or not self.engine.settle_unattended(tasks):
            return False
        if self.store.queued_tasks():
            self.kick()  # a slot came free, or a task that never started went back in the queue
        return True

    def kick(self) -> None:
        """Get queued work moving: dispatch here if we are the engine, else wake the engine."""
        if self.engine is not None and self.engine.owner:
            self.engine.dispatch()
            return
        if poke(self.home / "engine.sock", kick_message()):
            return
        if self.autostart_engine and not engine_running(self.home):
            self.start_background_engine()

    def start_background_engine(self) -> None:
        """Run ``orchestra engine`` in a window of Orchestra's tmux server (it exits when idle)."""
        argv = [sys.executable, "-m", "bot", "engine"]
        env = {k: v for k in ("PATH", "HOME", "ORCHESTRA_HOME", "ORCHESTRA_CONFIG") if (v := os.environ.get(k))}
        env["ORCHESTRA_HOME"] = str(self.home)
        if self.config_path is not None:  # the engine must read the same bots.yaml as we did
            env["ORCHESTRA_CONFIG"] = str(self.config_path.resolve())
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        # Its keys go in a mode-600 file it reads and deletes at once: tmux's command line and
        # environment (which every window inherits) never hold them.
        handoff = self.home / f"engine-env-{os.getpid()}-{time.monotonic_ns()}.bin"
        write_engine_env(str(handoff), self._engine_environment())
        env[ENGINE_ENV] = str(handoff)
        with contextlib.suppress(Exception):
            self.tmux.kill("_engine")
        try:
            self.tmux.start_window("_engine", argv, cwd=os.getcwd(), env=env)
        except BaseException:
            discard(str(handoff))
            raise
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (self.home / "engine.sock").exists():
            time.sleep(0.02)
        if handoff.exists() and "_engine" not in self.tmux.windows():
            discard(str(handoff))  # the engine died before it could read it

    def _engine_environment(self) -> dict[str, str]:
        """What an engine reads of our environment: what its agents inherit (the allowlist and each
        agent's ``env_pass``) and every secret the config names (agents' ``env_from``, chat tokens)."""
        passed = agent_env(os.environ, [name for agent in self.config.agents.values() for name in agent.env_pass])
        sources = [source for agent in self.config.agents.values() for source in agent.env_from.values()]
        sources += [name for name in self.config.known_secrets() if name in os.environ]
        return {**passed, **{name: os.environ[name] for name in sources if name in os.environ}}

    # -- helpers ------------------------------------------------------------------------------
    def _channels(self) -> list[str]:
        return self.config.channels()

    def _audit(self, actor: Actor, action: str, task_id: str | None, detail: str) -> None:
        self.audit(actor, action, task_id, detail)

    def audit(self, actor: Actor, action: str, task_id: str | None, detail: str) -> None:
        """Record who did what, when and from where; secret values never reach the audit table."""
        detail = self.store.redactor.text(detail)  # before the cut, so no part of a secret is kept
        self.store.audit(self.clock.now(), actor.name, actor.source, action, task_id, detail[:500], chat=actor.where)

    def doctor(self) -> list[tuple[str, bool, str]]:
        """Checks for ``orchestra doctor``: (what, ok, detail)."""
        checks: list[tuple[str, bool, str]] = []
        tmux_ok = TmuxManager.available()
        version = _version(["tmux", "-V"]) if tmux_ok else "not found (apt-get install tmux)"
        checks.append(("tmux", tmux_ok, version))
        routed = _routed_agents(self.config)
        for name, agent in self.config.agents.items():
            settings = self.config.agent_settings(name)
            # Only an agent that routing sends work to fails the check; another one only warns.
            uses = routed.get(name)
            why = f"routing uses it for {_first(uses)}" if uses else "warning only: routing does not use it"
            if not agent_installed(agent.command):
                checks.append((f"agent {name}", not uses, f"{settings.command} not found on PATH · {why}"))
                continue
            from core.agents import adapter_for

            argv = settings.splice(adapter_for(settings.kind).version_argv(settings))
            checks.append((f"agent {name}", True, f"{settings.command} · {_version(argv)}"))
            missing = [src for src in agent.env_from.values() if src not in os.environ]
            if missing:
                checks.append((f"agent {name} env", not uses, "not set: " + ", ".join(missing) + f" · {why}"))
        writable = os.access(self.home, os.W_OK)
        checks.append(("data dir", writable, f"{self.home} ({'writable' if writable else 'not writable'})"))
        mode = self.home.stat().st_mode & 0o777
        checks.append(("data dir permissions", mode & 0o077 == 0, f"{mode:o} (want 700: other users cannot read)"))
        checks.append(("store", True, f"{self.store.path} · migrations {', '.join(self.store.applied_migrations())}"))
        checks.append(("engine", True, "running" if engine_running(self.home) else "not running (starts on demand)"))
        return checks


MAX_BUDGET_USD = 1_000_000.0


def _check_text(text: str) -> None:
    """Refuse text that is not valid Unicode (undecodable bytes reach us as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        raise TaskRejected(f"the task text is not valid UTF-8 ({what} at character {exc.start})") from None


def _amount(text: str) -> float:
    try:
        amount = float(text.replace(",", ""))
    except ValueError:
        raise InvalidInput(f"{text!r} is not an amount: give dollars (25 or 2.50), off or reset") from None
    if not 0.01 <= amount <= MAX_BUDGET_USD:  # also NaN
        raise InvalidInput(f"a budget is at least $0.01 and at most ${MAX_BUDGET_USD:,.0f}")
    return round(amount, 2)


def _routed_agents(config: Config) -> dict[str, list[str]]:
    """The agents routing can send a task to, each with what it gets (categories, rules, the rest)."""
    routing = config.routing
    routed: dict[str, list[str]] = {}
    for category, agent in routing.categories.items():
        routed.setdefault(agent, []).append(category)
    for rule in routing.rules:
        if rule.agent:
            routed.setdefault(rule.agent, []).append(f"rule {rule.name}")
    routed.setdefault(routing.default_agent, []).append("everything else (the default agent)")
    return routed


def _first(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"version unknown ({exc})"
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0] if out else f"exit {proc.returncode}"


def task_json(task: Task) -> dict[str, Any]:
    """A task as a plain JSON-ready dict for ``--json`` output."""
    data = {k: getattr(task, k) for k in task.__dataclass_fields__}
    data["state"] = task.state.value
    data["duration_s"] = task.duration_s
    plain: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return plain


__all__ = ["ACTIVE_STATES", "LOCAL", "Actor", "Delegation", "Service", "build_router", "task_json"]
