"""The CLI's plans: ``delegate`` of a numbered list or ``--plan FILE``, ``show p3``, the tree in
``status``, ``cancel p3``, ``approve p3``, ``retry p3.2`` (``core.service.plans``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.output import as_json
from core import plans as planning
from core.errors import TaskRejected

if TYPE_CHECKING:
    import argparse

    from bot.app import App
    from core.service.plans import PlanDelegation


def spec_for(app: App, args: argparse.Namespace, text: str) -> planning.PlanSpec | None:
    """The plan this delegation asks for: ``--plan FILE``, else the text's own (None: one task)."""
    if getattr(args, "plan", None) == "auto":
        return None  # the planner agent makes it: see delegate_auto
    if getattr(args, "plan", None):
        import yaml

        path = Path(args.plan)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TaskRejected(f"--plan {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise TaskRejected(f"--plan {path}: not YAML ({str(exc).splitlines()[0]})") from None
        return planning.from_data(data, str(path))
    return app.service.plan_for(text, agent=args.agent, single=getattr(args, "single", False))


def delegate_auto(app: App, args: argparse.Namespace, text: str) -> int:
    """``--plan auto``: the planner agent is asked; the plan's steps come from its answer."""
    plan = app.service.delegate_planned(text, cwd=args.cwd, project=args.project)
    print(f"{plan.id}: asked {app.config.plans.planner} for a plan; `orchestra show {plan.id}` follows it")
    return 0


def delegate(app: App, args: argparse.Namespace, spec: planning.PlanSpec, text: str) -> int:
    """Make the plan and print its route; with ``--wait`` run it here (or wait for the engine) to its end."""
    from core.service.plans import describe

    if not args.wait:
        made = app.service.delegate_plan(spec, text or spec.lead, cwd=args.cwd, project=args.project)
        _print(made, args.json, describe(made))
        return 0
    return _run_and_wait(app, args, spec, text)


def _run_and_wait(app: App, args: argparse.Namespace, spec: planning.PlanSpec, text: str) -> int:
    import asyncio

    from core.service.plans import describe
    from core.tmux import TmuxManager

    async def as_engine() -> str:
        await app.engine.start()
        try:
            made = app.service.delegate_plan(spec, text or spec.lead, cwd=args.cwd, project=args.project)
            _print(made, args.json, describe(made))
            for _ in range(int(86400 / 0.1)):  # a day at most; the plan ends or pauses long before
                if _settled(app, made.plan.id):
                    break
                await asyncio.sleep(0.1)
            return made.plan.id
        finally:
            await app.engine.stop()

    if TmuxManager.available() and app.engine.acquire(role="cli"):
        plan_id = asyncio.run(as_engine())
    else:
        made = app.service.delegate_plan(spec, text or spec.lead, cwd=args.cwd, project=args.project)
        _print(made, args.json, describe(made))
        plan_id = made.plan.id
        while not _settled(app, plan_id):
            time.sleep(0.2)
    show(app, plan_id, args.json)
    return 0 if app.service.get_plan(plan_id).state == "succeeded" else 1


def _settled(app: App, plan_id: str) -> bool:
    return app.service.get_plan(plan_id).state in ("succeeded", "failed", "cancelled", "paused", "awaiting_approval")


def _print(made: PlanDelegation, json_out: bool, text: str) -> None:
    if json_out:
        print(as_json(plan_json(made.plan, made.steps) | {"estimate_usd": made.estimate_usd,
                                                         "estimate_s": made.estimate_s}))  # fmt: skip
        return
    print(f"{made.plan.id}: {len(made.steps)} steps ({made.plan.origin})")
    print(text)
    for step in made.steps:
        after = f" (after {', '.join(map(str, step.step_after))})" if step.step_after else ""
        print(
            f"  {made.plan.id}.{step.plan_step} {step.step_title} → {step.agent} ({step.category}){after} [{step.id}]"
        )
    if made.needs_approval:
        print(f"waiting for approval: {made.approval_reason} — orchestra approve {made.plan.id}", flush=True)


def plan_json(plan: Any, steps: list[Any]) -> dict[str, Any]:
    from core.plan_text import latest_steps

    latest = latest_steps(steps)
    return {
        "id": plan.id, "state": plan.state, "origin": plan.origin, "text": plan.text, "branch": plan.branch,
        "estimate_usd": plan.estimate_usd, "estimate_s": plan.estimate_s, "actual_usd": plan.actual_usd,
        "actual_s": plan.actual_s, "paused": plan.paused or None, "skipped": list(plan.skipped),
        "steps": [
            {"ref": f"{plan.id}.{n}", "id": t.id, "title": t.step_title, "agent": t.agent, "category": t.category,
             "state": t.state.value, "after": list(t.step_after), "cost_usd": t.cost_usd,
             "attempts": sum(1 for s in steps if s.plan_step == n)}
            for n, t in latest.items()
        ],
    }  # fmt: skip


def show(app: App, plan_id: str, json_out: bool) -> int:
    plan = app.service.get_plan(plan_id)
    steps = app.service.plan_steps(plan.id)
    if json_out:
        print(as_json(plan_json(plan, steps), ensure_ascii=False))
        return 0
    print(app.service.plan_card(plan.id))
    if plan.branch:
        print(f"branch {plan.branch} (from {plan.base}) in {plan.repo}")
    if plan.paused and plan.state == "paused":
        print("orchestra retry PLAN.STEP · orchestra cancel " + plan.id)
    return 0


def tree(app: App) -> list[str]:
    """The active plans and the last few finished ones, as trees, for ``orchestra status``."""
    from core.plan_text import tree_lines

    lines: list[str] = []
    now = time.time()
    for plan in app.store.plans(limit=5):
        if plan.finished and now - (plan.finished_at or 0) > 86400:
            continue
        lines += tree_lines(plan, app.store.plan_tasks(plan.id), now)
    return lines


__all__ = ["delegate", "plan_json", "show", "spec_for", "tree"]
