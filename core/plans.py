"""Plans: one request as several steps, each a task of its own, started as soon as the steps it
depends on are done. This module reads a plan from where it comes from (a numbered list the person
wrote, a YAML file, a template of ``bots.yaml``, a planner agent's JSON) and checks it; running it
is ``core.engine.plans``' and the Service's.

A plan is a list of :class:`Step`. ``after`` holds the indexes (from 1) of the steps a step waits
for; a numbered list runs in order unless a step says otherwise (``3. (after 1) …``, or
``(parallel)`` for none). Bullets are requirements of one task, never steps.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from core.errors import TaskRejected

MAX_STEPS = 20
_NUMBERED = re.compile(r"^\s*(\d{1,2})[.)]\s+(\S.*)$")
_AFTER = re.compile(r"^\((?:after|needs)\s+([\d,\s&and]+)\)\s*", re.IGNORECASE)
_PARALLEL = re.compile(r"^\((?:parallel|any time|independent)\)\s*", re.IGNORECASE)


class PlanError(TaskRejected):
    """A plan that cannot run (a cycle, a step after one that does not exist, bad JSON): one line."""


@dataclass(frozen=True)
class Step:
    """One step: what to do, its category (None: routed as any task), and which steps it waits for."""

    title: str
    text: str
    after: tuple[int, ...] = ()
    category: str | None = None
    agent: str | None = None


@dataclass(frozen=True)
class PlanSpec:
    """A checked plan and where it came from (``written``, ``file``, ``template:feature``, ``planner``)."""

    steps: tuple[Step, ...]
    source: str
    lead: str = ""  # the sentence before a written list: the plan's goal
    confirm: bool = False  # the text could be one task or a plan: ask before anything runs
    notes: tuple[str, ...] = field(default_factory=tuple)

    def order(self) -> list[list[int]]:
        """The steps in waves (indexes from 1): each wave's steps can run together."""
        return waves(self.steps)


def from_text(text: str) -> PlanSpec | None:
    """A plan when ``text`` is a numbered list of at least two steps (None: one task).

    A list under a sentence of its own could be either (steps, or the parts of one request): such a
    plan is marked ``confirm``; the person says which."""
    lines = [line for line in text.splitlines() if line.strip()]
    numbered = [(i, m) for i, line in enumerate(lines) if (m := _NUMBERED.match(line))]
    if len(numbered) < 2:
        return None
    first = numbered[0][0]
    items: list[list[str]] = []
    for line in lines[first:]:
        match = _NUMBERED.match(line)
        if match:
            items.append([match.group(2).strip()])
        elif items:
            items[-1].append(line.strip())  # a step's own continuation line
    numbers = [int(m.group(1)) for _, m in numbered]
    if numbers != list(range(1, len(numbers) + 1)):
        return None  # "3. … 7. …" reads as prose that happens to hold numbers
    lead = " ".join(line.strip() for line in lines[:first])
    steps = []
    for index, parts in enumerate(items, start=1):
        body = " ".join(parts)
        after: tuple[int, ...] = (index - 1,) if index > 1 else ()
        if match := _AFTER.match(body):
            after = tuple(int(n) for n in re.findall(r"\d+", match.group(1)))
            body = body[match.end() :]
        elif match := _PARALLEL.match(body):
            after = ()
            body = body[match.end() :]
        steps.append(Step(title=_title(body), text=body, after=after))
    spec = PlanSpec(tuple(steps), "written", lead=lead, confirm=bool(lead))
    check(spec)
    return spec


def from_data(data: Any, source: str) -> PlanSpec:
    """A plan from parsed YAML or a planner's JSON: ``{"steps": [{"title", "text", "category",
    "after": [1]}]}`` (a bare list of steps too); :class:`PlanError` naming what is wrong."""
    if isinstance(data, dict):
        data = data.get("steps")
    if not isinstance(data, list) or not data:
        raise PlanError(f"{source}: a plan is a list of steps under `steps:`")
    steps = []
    for index, raw in enumerate(data, start=1):
        if not isinstance(raw, dict):
            raise PlanError(f"{source}: step {index} is not a mapping with a text")
        unknown = set(raw) - {"title", "text", "category", "agent", "after", "id", "depends_on"}
        if unknown:
            raise PlanError(f"{source}: step {index} has unknown keys: {', '.join(sorted(unknown))}")
        text = raw.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PlanError(f"{source}: step {index} has no text")
        after = raw.get("after", raw.get("depends_on", []))
        if isinstance(after, int):
            after = [after]
        if not isinstance(after, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in after):
            raise PlanError(f"{source}: step {index}'s after must list step numbers")
        for key in ("title", "category", "agent"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise PlanError(f"{source}: step {index}'s {key} must be text")
        title = str(raw.get("title") or _title(text))
        steps.append(Step(title[:80], text.strip(), tuple(after), raw.get("category"), raw.get("agent")))
    spec = PlanSpec(tuple(steps), source)
    check(spec)
    return spec


def from_planner(final_text: str) -> PlanSpec:
    """The plan a planner agent answered with: the first JSON object in its reply (a fenced block
    or bare); :class:`PlanError` when there is none or it is not a valid plan."""
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", final_text, re.DOTALL)
    candidate = fenced.group(1) if fenced else final_text[final_text.find("{") : final_text.rfind("}") + 1]
    try:
        data = json.loads(candidate)
    except ValueError:
        raise PlanError("the planner's answer holds no JSON plan") from None
    return from_data(data, "the planner's plan")


def from_template(name: str, steps: list[dict[str, Any]], text: str) -> PlanSpec:
    """A template of ``bots.yaml`` (``plans.templates.NAME``) for the request ``text``: each step's
    ``text`` may hold ``{task}``; a step without one gets the request after its own words."""
    filled = []
    for raw in steps:
        own = str(raw.get("text") or raw.get("title") or "")
        body = own.replace("{task}", text) if "{task}" in own else f"{own}: {text}" if own else text
        filled.append({**raw, "text": body})
    return from_data(filled, f"template {name}")


def check(spec: PlanSpec) -> None:
    """A plan can run: 1 to ``MAX_STEPS`` steps, each waiting only for other steps that exist, no cycle."""
    count = len(spec.steps)
    if not 1 <= count <= MAX_STEPS:
        raise PlanError(f"a plan has 1 to {MAX_STEPS} steps; this one has {count}")
    for index, step in enumerate(spec.steps, start=1):
        for n in step.after:
            if n == index:
                raise PlanError(f"step {index} waits for itself")
            if not 1 <= n <= count:
                raise PlanError(f"step {index} waits for step {n}, which the plan does not have")
    waves(spec.steps)


def waves(steps: tuple[Step, ...]) -> list[list[int]]:
    """Steps (indexes from 1) in waves of steps whose waits are all in earlier waves; a cycle is a PlanError."""
    done: set[int] = set()
    left = list(range(1, len(steps) + 1))
    out: list[list[int]] = []
    while left:
        wave = [i for i in left if set(steps[i - 1].after) <= done]
        if not wave:
            raise PlanError(f"steps {', '.join(map(str, left))} wait for each other in a circle")
        out.append(wave)
        done |= set(wave)
        left = [i for i in left if i not in done]
    return out


def critical_path(steps: tuple[Step, ...], durations: list[float]) -> float:
    """The plan's time when independent steps run together: the longest chain of waits."""
    finish: dict[int, float] = {}
    for wave in waves(steps):
        for i in wave:
            finish[i] = durations[i - 1] + max((finish[n] for n in steps[i - 1].after), default=0.0)
    return max(finish.values(), default=0.0)


def step_ref(plan_id: str, index: int) -> str:
    return f"{plan_id}.{index}"


def parse_plan_ref(word: str) -> tuple[str, int | None] | None:
    """``p3`` → (``p3``, None); ``p3.2`` → (``p3``, 2); anything else None."""
    match = re.fullmatch(r"[pP](\d{1,9})(?:\.(\d{1,2}))?", word.strip())
    if match is None:
        return None
    return f"p{int(match.group(1))}", int(match.group(2)) if match.group(2) else None


def _title(text: str) -> str:
    first = re.split(r"(?<=[.!?])\s|\n", text.strip(), maxsplit=1)[0]
    return first if len(first) <= 60 else first[:59] + "…"


__all__ = [
    "MAX_STEPS",
    "PlanError",
    "PlanSpec",
    "Step",
    "check",
    "critical_path",
    "from_data",
    "from_planner",
    "from_template",
    "from_text",
    "parse_plan_ref",
    "step_ref",
    "waves",
]
