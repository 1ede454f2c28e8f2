"""Plans from the Service's side: making one (its steps routed, estimated and stored with the plan,
together), approving, cancelling, retrying or skipping a step, and reading one. Moving a running
plan on is the engine's (``core.engine.plans``), woken by :meth:`kick`."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import plans as planning
from core.errors import InvalidTransition, TaskRejected, UnknownTask
from core.models import Task, TaskState
from core.plan_text import approval_keyboard, card_text, latest_steps, route_line
from core.service.base import LOCAL, Actor
from core.service.branches import Branches
from core.text import format_duration, money

if TYPE_CHECKING:
    from core.config.schedules import ScheduleConfig
    from core.store.plans import Plan

_DEFAULT_STEP_S = 300.0  # a step's time with no history of its agent on its category


@dataclass(frozen=True)
class PlanDelegation:
    """A plan as made: the plan, its steps, the route line, and what it is estimated at and why."""

    plan: Plan
    steps: list[Task]
    route: str
    estimate_usd: float
    estimate_s: float
    serial_s: float
    basis: str
    needs_approval: bool
    approval_reason: str


class PlanActions(Branches):
    """Plans: their making, their gates and their steps."""

    def plan_for(self, text: str, *, agent: str | None = None, single: bool = False) -> planning.PlanSpec | None:
        """The plan ``text`` asks for (a numbered list, a matching template), or None: one task.
        ``single`` or an agent named (``--agent``, ``@agent``) always means one task."""
        from core.routing import parse_override

        if single or agent:
            return None
        _, body = self.split_project(text.strip())
        override, _ = parse_override(body, self.config.agents.keys())
        if override is not None:
            return None
        written = planning.from_text(body)
        if written is not None:
            return written
        import re2

        for name, template in self.config.plans.templates.items():
            if re2.search(template.match, body):
                steps = [s.model_dump() for s in template.steps]
                return planning.from_template(name, steps, body)
        return None

    def delegate_plan(
        self,
        spec: planning.PlanSpec,
        text: str,
        *,
        cwd: str | None = None,
        project: str | None = None,
        actor: Actor = LOCAL,
    ) -> PlanDelegation:
        """Store the plan and its steps (each routed and estimated), held for approval when the policy
        or an ambiguous text asks; else running: the steps with nothing to wait for start at once."""
        if actor.ref and (done := self.store.plan_by_source(actor.ref)) is not None:
            return self._plan_delegation(done)
        chosen, body = self.choose_project(text.strip(), project=project, cwd=cwd, actor=actor, parent=None)
        workdir = self.project_workdir(chosen) if chosen and cwd is None else self._workdir(cwd)
        routed = []
        for step in spec.steps:
            decision = self._step_route(step, chosen)
            cost, cost_n = self.estimate(decision.agent, decision.category)
            took, took_n = self.estimate_time(decision.agent, decision.category)
            routed.append((step, decision, cost, cost_n, took, took_n))
        total = sum(r[2] for r in routed)
        critical = planning.critical_path(spec.steps, [r[4] for r in routed])
        serial = sum(r[4] for r in routed)
        basis = _basis(routed)
        needs, why = self._plan_gate(spec, routed, total)
        repo, branch, base = self._plan_branch(chosen, workdir, body)
        now = self.clock.now()
        with self.store.atomic():
            plan = self.store.create_plan(
                {
                    "text": self.quote(spec.lead or body, 2000), "state": "awaiting_approval" if needs else "running",
                    "origin": spec.source, "requester": actor.name, "source": actor.source,
                    "source_ref": actor.ref or None, "project": chosen, "cwd": workdir, "created_at": now,
                    "estimate_usd": total, "estimate_s": critical, "estimate_note": basis,
                    "repo": repo, "branch": branch, "base": base,
                }
            )  # fmt: skip
            steps = [
                self.store.create_task(
                    {
                        "text": step.text,
                        "agent": decision.agent,
                        "category": decision.category,
                        "rule": "plan",
                        "route_reason": f"step {i} of {plan.id}: {decision.reason}",
                        "state": TaskState.WAITING,
                        "cwd": workdir,
                        "project": chosen,
                        "requester": actor.name,
                        "source": actor.source,
                        "created_at": now,
                        "timeout_s": self.config.limits.task_timeout_s,
                        "estimate_usd": cost,
                        "estimate_basis": cost_n,
                        "plan_id": plan.id,
                        "plan_step": i,
                        "step_title": step.title,
                        "step_after": json.dumps(list(step.after)),
                    }
                )
                for i, (step, decision, cost, cost_n, _took, _n) in enumerate(routed, start=1)
            ]
            self.audit(actor, "delegate", None, f"{plan.id}: {len(steps)} steps ({spec.source})")
            self._plan_card(plan.id, steps, needs, why)
        if not needs:
            self.kick()
        return PlanDelegation(self.store.get_plan(plan.id), steps, route_line(plan, steps), total, critical, serial,
                              basis, needs, why)  # fmt: skip

    def delegate_planned(
        self, text: str, *, cwd: str | None = None, project: str | None = None, actor: Actor = LOCAL
    ) -> Plan:
        """Ask the planner agent (``plans.planner``) for a plan of ``text``: the plan is ``planning``
        until it answers; its JSON then becomes the steps, checked before anything runs."""
        from core.engine.plans import planner_prompt

        planner = self.config.plans.planner
        if planner is None:
            raise TaskRejected("no planner: set plans.planner in bots.yaml to the agent that plans")
        if actor.ref and (done := self.store.plan_by_source(actor.ref)) is not None:
            return done
        chosen, body = self.choose_project(text.strip(), project=project, cwd=cwd, actor=actor, parent=None)
        if not body:
            raise TaskRejected("the task text is empty")
        workdir = self.project_workdir(chosen) if chosen and cwd is None else self._workdir(cwd)
        repo, branch, base = self._plan_branch(chosen, workdir, body)
        now = self.clock.now()
        with self.store.atomic():
            plan = self.store.create_plan(
                {
                    "text": self.quote(body, 2000), "state": "planning", "origin": "planner",
                    "requester": actor.name, "source": actor.source, "source_ref": actor.ref or None,
                    "project": chosen, "cwd": workdir, "created_at": now, "repo": repo, "branch": branch, "base": base,
                }
            )  # fmt: skip
            asked = self.store.create_task(
                {
                    "text": planner_prompt(self.config, body), "agent": planner, "category": "architecture",
                    "rule": "plan", "route_reason": f"the planner of {plan.id}", "state": TaskState.QUEUED,
                    "cwd": workdir, "project": chosen, "requester": actor.name, "source": actor.source,
                    "created_at": now, "queued_at": now, "timeout_s": self.config.limits.task_timeout_s,
                    "plan_id": plan.id, "plan_step": 0, "step_title": "plan it", "step_after": "[]",
                }
            )  # fmt: skip
            self.audit(actor, "delegate", asked.id, f"{plan.id}: asked {planner} for a plan")
            self._plan_card(plan.id, [asked], False, "")
        self.kick()
        return self.store.get_plan(plan.id)

    def start_scheduled(self, schedule: ScheduleConfig, key: str) -> str:
        """A schedule's run (``key``: the schedule and its time): one task, or one plan when its text
        is one, however often it is asked for (the key is the delegation's reference)."""
        actor = Actor(name=f"schedule:{schedule.name}", source="schedule", ref=key)
        spec = self.plan_for(schedule.task, agent=schedule.agent)
        if spec is not None:
            return self.delegate_plan(spec, schedule.task, project=schedule.project, actor=actor).plan.id
        return self.delegate(schedule.task, agent=schedule.agent, project=schedule.project, actor=actor).task.id

    def estimate_time(self, agent: str, category: str) -> tuple[float, int]:
        """Median duration of this agent on this category so far, and how many runs it rests on."""
        history = self.store.duration_history(agent, category)
        return (statistics.median(history), len(history)) if history else (_DEFAULT_STEP_S, 0)

    def get_plan(self, plan_id: str) -> Plan:
        ref = planning.parse_plan_ref(plan_id)
        plan = self.store.find_plan(ref[0]) if ref else None
        if plan is None:
            raise UnknownTask(plan_id)
        return plan

    def plan_steps(self, plan_id: str) -> list[Task]:
        return self.store.plan_tasks(self.get_plan(plan_id).id)

    def approve_plan(self, plan_id: str, *, actor: Actor = LOCAL) -> Plan:
        plan = self.get_plan(plan_id)
        with self.store.atomic():
            if not self.store.transition_plan(plan.id, ("awaiting_approval",), "running"):
                raise InvalidTransition(f"{plan.id} is {plan.state}; there is nothing to approve")
            self.audit(actor, "approve", None, plan.id)
        self.kick()
        return self.get_plan(plan.id)

    def replied_plan(self, platform: str, chat_id: str, message_id: str) -> Plan | None:
        """The plan a message of ours was about (its card, its approval request), if any."""
        sent = self.sent_message(platform, chat_id, message_id)
        ref = planning.parse_plan_ref(sent.task_id) if sent is not None and sent.task_id else None
        return self.store.find_plan(ref[0]) if ref else None

    def edit_plan(self, plan_id: str, text: str, *, actor: Actor = LOCAL) -> PlanDelegation:
        """Replace a plan held for approval by the plan ``text`` writes (a numbered list): the old one
        is cancelled, the new one made (and held or run, as the policy says)."""
        plan = self.get_plan(plan_id)
        if plan.state != "awaiting_approval":
            raise InvalidTransition(f"{plan.id} is {plan.state}; only a plan waiting for approval is edited")
        spec = planning.from_text(text)
        if spec is None:
            raise TaskRejected("send the plan as a numbered list (1. … 2. …), one step a line")
        spec = planning.PlanSpec(spec.steps, "written", lead=spec.lead or plan.text, confirm=False)
        self.cancel_plan(plan.id, actor=actor)
        return self.delegate_plan(spec, text, cwd=plan.cwd if not plan.project else None, project=plan.project,
                                  actor=actor)  # fmt: skip

    def cancel_plan(self, plan_id: str, *, actor: Actor = LOCAL) -> Plan:
        """Cancel the plan: its waiting and queued steps at once, its running ones stopped."""
        plan = self.get_plan(plan_id)
        if plan.finished:
            raise InvalidTransition(f"{plan.id} is {plan.state}; there is nothing to cancel")
        with self.store.atomic():
            self.store.transition_plan(plan.id, ("awaiting_approval", "running", "paused"), "cancelled",
                                       finished_at=self.clock.now())  # fmt: skip
            self.audit(actor, "cancel", None, plan.id)
        for task in self.store.plan_tasks(plan.id):
            if not task.state.finished:
                try:
                    self.cancel(task.id, actor=actor)
                except InvalidTransition:
                    pass  # it ended meanwhile
        return self.get_plan(plan.id)

    def retry_step(self, ref: str, *, actor: Actor = LOCAL) -> Task:
        """Run a paused plan's failed step again (a new attempt, as the first was asked) and resume the plan."""
        plan, step = self._step(ref)
        if step.state not in (TaskState.FAILED, TaskState.TIMED_OUT, TaskState.OVER_BUDGET, TaskState.CANCELLED,
                              TaskState.REJECTED):  # fmt: skip
            raise InvalidTransition(f"{ref} is {step.state.value}; only a failed step is retried")
        with self.store.atomic():
            why = f"retry of {step.id} in {plan.id} by {actor.name}"
            again = self.store.next_attempt(step, agent=step.agent, extra="", why=why, requester=actor.name,
                                            source=actor.source, now=self.clock.now())  # fmt: skip
            self.store.transition_plan(plan.id, ("paused",), "running", paused="")
            self.audit(actor, "retry", again.id, f"{ref} ({step.id})")
        self.kick()
        return again

    def skip_step(self, ref: str, *, actor: Actor = LOCAL) -> Plan:
        """Leave a paused plan's failed step out; the steps after it go on without it."""
        plan, step = self._step(ref)
        if not step.state.finished or step.state in (TaskState.SUCCEEDED, TaskState.APPROVED):
            raise InvalidTransition(f"{ref} is {step.state.value}; only a failed step is skipped")
        with self.store.atomic():
            self.store.update_plan(plan.id, skipped={*plan.skipped, step.plan_step or 0})
            self.store.transition_plan(plan.id, ("paused",), "running", paused="")
            self.audit(actor, "reject", step.id, f"skipped {ref}")
        self.kick()
        return self.get_plan(plan.id)

    def plan_card(self, plan_id: str) -> str:
        plan = self.get_plan(plan_id)
        return card_text(plan, self.store.plan_tasks(plan.id), self.clock.now())

    # -- the parts --------------------------------------------------------------------------------
    def _step(self, ref: str) -> tuple[Plan, Task]:
        parsed = planning.parse_plan_ref(ref)
        if parsed is None or parsed[1] is None:
            raise TaskRejected(f"{ref!r} names no step: write p3.2")
        plan = self.get_plan(parsed[0])
        step = latest_steps(self.store.plan_tasks(plan.id)).get(parsed[1])
        if step is None:
            raise UnknownTask(ref)
        return plan, step

    def _step_route(self, step: planning.Step, project: str | None):  # type: ignore[no-untyped-def]
        from core.routing import RouteDecision

        if step.agent:
            return RouteDecision(step.agent, step.category or "general", "plan", f"the plan names {step.agent}")
        if step.category:
            chosen = self.config.projects.get(project or "")
            agent = (chosen.categories.get(step.category) if chosen else None) or (chosen.agent if chosen else None)
            agent = agent or self.config.routing.categories.get(step.category) or self.config.routing.default_agent
            return RouteDecision(agent, step.category, "plan", f"the plan's {step.category} step")
        return self._route(step.text, agent=None, project=project)

    def _plan_gate(self, spec: planning.PlanSpec, routed: list, total: float) -> tuple[bool, str]:  # type: ignore[type-arg]
        policy = self.config.policy
        if spec.confirm:
            return True, "the text reads as a list of steps or as one request: approve to run it as this plan"
        for _step, decision, *_ in routed:
            if decision.category in policy.approval_for:
                return True, f"its {decision.category} step needs approval"
        if policy.approve_above_usd is not None and total > policy.approve_above_usd:
            return True, f"estimated {money(total)} is above {money(policy.approve_above_usd)}"
        return False, ""

    def _plan_branch(self, project: str | None, workdir: str, text: str) -> tuple[str | None, str | None, str | None]:
        """The plan's branch, cut from the project's base, when its steps get worktrees; else (None, None, None)."""
        from core import worktrees
        from core.summary import git_root

        config = self.config.projects.get(project or "")
        isolation = config.isolation if config is not None else self.config.limits.isolation
        root = git_root(workdir) if isolation == "worktree" else None
        if root is None:
            return None, None, None
        base = (config.base if config is not None else None) or worktrees.current_branch(Path(root))
        num = self.store.next_plan_number()
        branch = f"orchestra/p{num}-{worktrees.slug(text)}"
        worktrees.git(Path(root), "branch", "-q", "--no-track", branch, base, what=f"could not make {branch}")
        return str(root), branch, base

    def _plan_card(self, plan_id: str, steps: list[Task], needs: bool, why: str) -> None:
        from core.messages import OutKind
        from core.notify import Notifier

        plan = self.store.get_plan(plan_id)
        text = card_text(plan, steps, self.clock.now())
        buttons: tuple = ()  # type: ignore[type-arg]
        if needs:
            text += f"\n🔐 Needs approval: {why}"
            buttons = approval_keyboard(plan.id)
        Notifier(self.config, self.store, self.clock).post(
            OutKind.COMPLETION, f"{plan.id}:card", text, task_id=plan.id, buttons=buttons, commands=buttons
        )

    def _plan_delegation(self, plan: Plan) -> PlanDelegation:
        steps = latest_steps(self.store.plan_tasks(plan.id))
        tasks = list(steps.values())
        waiting = plan.state == "awaiting_approval"
        return PlanDelegation(plan, tasks, route_line(plan, tasks), plan.estimate_usd or 0.0, plan.estimate_s or 0.0,
                              plan.estimate_s or 0.0, plan.estimate_note, waiting, "")  # fmt: skip


def _basis(routed: list) -> str:  # type: ignore[type-arg]
    cost_n = [r[3] for r in routed]
    took_n = [r[5] for r in routed]
    if not any(cost_n) and not any(took_n):
        return "no history: default per step"
    return f"median of {sum(cost_n)} similar runs (cost), {sum(took_n)} (time)"


def describe(d: PlanDelegation) -> str:
    """The three lines the terminal and a chat show for a new plan."""
    parallel = f" (parallel; {format_duration(d.serial_s)} in a row)" if d.serial_s > d.estimate_s + 1 else ""
    return (
        f"📍 Routed to: {d.route}\n💰 Estimated cost: {money(d.estimate_usd)}\n"
        f"⏱️  Estimated time: {format_duration(d.estimate_s)}{parallel} · {d.basis}"
    )


__all__ = ["PlanActions", "PlanDelegation", "describe"]
