"""Delegation: route a task's text to an agent, estimate its cost, apply the approval policy, queue it."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import AgentUnavailable, TaskRejected, TmuxError
from core.files import TASK_INBOX, adopt, with_files
from core.models import Task, TaskState
from core.protocol import task_dir
from core.service.base import LOCAL, Actor
from core.service.engine_control import EngineControl
from core.service.projects import ProjectChoice
from core.text import money

if TYPE_CHECKING:
    from collections.abc import Sequence

    from core.routing import RouteDecision, Router


@dataclass(frozen=True)
class Delegation:
    """A task as delegated: where it went and why, what it should cost, and whether it waits for approval."""

    task: Task
    decision: RouteDecision
    estimate_usd: float
    estimate_basis: int
    needs_approval: bool
    approval_reason: str


class Delegating(ProjectChoice, EngineControl):
    """Turns text into a queued task; only stores, queues and wakes the engine (it never runs the task)."""

    @property
    def router(self) -> Router:
        """Built on first use: compiling the rules is the slowest part of a CLI start."""
        if self._router is None:
            from core.routing import build_router

            self._router = build_router(self.config)
        return self._router

    def route(self, text: str, *, agent: str | None = None, project: str | None = None) -> RouteDecision:
        """Where ``text`` would go (a leading ``#project`` and ``project`` apply that project's routing),
        with the approval and review the policy adds to the rules'."""
        from core.hosts.registry import split_host

        _check_text(text)
        _, text = split_host(text)
        named, body = self.split_project(text)
        return self._route(body, agent=agent, project=named or (self.check_project(project) if project else None))

    def _route(self, text: str, *, agent: str | None, project: str | None) -> RouteDecision:
        from core.routing import leading_mention, parse_override  # the router's modules: only a command that routes

        _check_text(text)
        override, body = parse_override(text, self.config.agents.keys())
        known = ", ".join(sorted(self.config.agents))
        if override is None and (mention := leading_mention(text)) is not None:
            raise AgentUnavailable(mention, message=f"unknown agent @{mention}; agents: {known}")
        chosen = agent or override
        if chosen is not None and chosen not in self.config.agents:
            raise AgentUnavailable(chosen, message=f"unknown agent {chosen!r} (configured: {known})")
        router = self.project_router(self.router, project) if project else self.router
        decision = router.route(body, override=chosen)
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
        project: str | None = None,
        actor: Actor = LOCAL,
        parent: Task | None = None,
        files: Sequence[Path] = (),
        host: str | None = None,
    ) -> Delegation:
        """Route, estimate, apply the approval policy and queue a task; start it if a slot is free.

        The task runs in its project's directory (see :meth:`choose_project`); a project whose
        directory is missing is one line and nothing is stored. A chat update handled again (after
        a crash) gets the task it created the first time. ``files`` (staged by ``core.inbox``) move
        into the task's folder with it and are named after its text; the launch puts them in the
        agent's ``.orchestra/inbox/`` (``core.files``). ``host`` (or ``@host:NAME`` in the text)
        runs it on that host of bots.yaml; an unknown or unreachable one is one line, nothing stored.
        """
        from core.costs import effective_budgets
        from core.hosts.registry import split_host
        from core.routing import parse_override

        if actor.ref and (done := self.store.task_by_source(actor.ref)) is not None:
            return self._delegation_of(done)
        body = text.strip()
        if not body:
            raise TaskRejected("the task text is empty")
        limit = self.config.limits.max_task_chars
        if len(body) > limit:
            raise TaskRejected(f"the task text has {len(body):,} characters; the limit is {limit:,}")
        _check_text(body)
        mentioned, body = split_host(body)
        chosen, body = self.choose_project(body, project=project, cwd=cwd, actor=actor, parent=parent)
        workdir = self.project_workdir(chosen) if chosen and cwd is None else self._workdir(cwd)
        decision = self._route(body, agent=agent, project=chosen)
        override, stripped = parse_override(body, self.config.agents.keys())
        if override is not None:
            body = stripped
            if not body:
                raise TaskRejected(f"nothing to do: say what @{override} should do after its name")
        explicit = host or mentioned or (parent.host if parent is not None and parent.remote else None)
        where = self.hosts.choose(decision.agent, decision.category, explicit=explicit)
        if where.note:  # a routed host that is down is skipped like a missing CLI, in one line
            decision = dataclasses.replace(decision, reason=f"{decision.reason.removesuffix('.')}; {where.note}.")
        estimate, basis = self.estimate(decision.agent, decision.category)
        needs, why = self._needs_approval(decision, estimate)
        review = decision.require_review or decision.category in self.config.policy.review_for
        now = self.clock.now()
        # The task, its route, its audit line and its approval request commit together.
        with self.store.atomic():
            task = self.store.create_task(
                {
                    "text": with_files(body, [path.name for path in files]),
                    "agent": decision.agent,
                    "category": decision.category,
                    "rule": decision.rule,
                    "route_reason": decision.reason,
                    "state": TaskState.AWAITING_APPROVAL if needs else TaskState.QUEUED,
                    "cwd": workdir,
                    "project": chosen,
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
                    "host": where.host,
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
            routed += f" project={chosen}" if chosen else ""
            routed += f" host={where.host}" if where.host else ""
            self.audit(
                actor, "delegate", task.id, routed + (f" override=@{agent or override}" if agent or override else "")
            )
            if needs:
                self._request_approval(task, actor, why)
            if files:  # before the commit: an engine that sees the task finds its files
                adopt(files, task_dir(self.home, task.id) / TASK_INBOX)
        if not needs:
            try:
                self.kick()
            except TmuxError as exc:  # stored and queued: it starts when an engine can open its window
                raise TmuxError(
                    f"{task.id} is queued but cannot start: {exc}; once it is, `orchestra engine` starts it"
                ) from None
        return Delegation(self.store.get_task(task.id), decision, estimate, basis, needs, why)

    def _delegation_of(self, task: Task) -> Delegation:
        from core.routing import RouteDecision

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
        from core.costs import CostTracker

        over_budget, why = CostTracker(self.store, self.config, self.clock).admission()
        if over_budget:
            return True, why
        policy = self.config.policy
        if decision.category in policy.approval_for:
            return True, f"{decision.category} tasks need approval"
        if decision.require_approval:
            return True, f"rule {decision.rule} asks for approval"
        if policy.approve_above_usd is not None and estimate > policy.approve_above_usd:
            return True, f"estimated {money(estimate)} is above {money(policy.approve_above_usd)}"
        return False, ""

    def _request_approval(self, task: Task, actor: Actor, why: str) -> None:
        """Ask every notification channel; the chat the task came from already has the card."""
        from core.messages import ChatRef
        from core.notify import Notifier

        shown = ChatRef(actor.source, actor.chat) if actor.chat else None
        Notifier(self.config, self.store, self.clock).approval_request(task, why, shown_in=shown)

    def _workdir(self, cwd: str | None) -> str:
        chosen = cwd or self.config.workspace or os.getcwd()
        path = Path(chosen).expanduser()
        if not path.is_dir():
            raise TaskRejected(f"working directory {chosen!r} does not exist")
        return str(path.resolve())


def _check_text(text: str) -> None:
    """Refuse text that is not valid Unicode (undecodable bytes reach us as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        raise TaskRejected(f"the task text is not valid UTF-8 ({what} at character {exc.start})") from None


__all__ = ["Delegating", "Delegation"]
