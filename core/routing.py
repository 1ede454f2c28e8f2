"""Task routing: map a task's text to a category and to the agent that should run it.

Two kinds of rules feed one :class:`Router`:

* **Priority rules** (``weight is None``): the user's own rules from bots.yaml. They are tried in
  list order and the first one that matches wins over every weighted rule.
* **Weighted rules** (``weight`` is a number): the shipped defaults in ``default_rules.yaml``.
  Every matching weighted rule adds its weight to its category's score; the category with the
  best score wins (ties go to the category whose first matching rule comes first in the list).
  The decision names the strongest matching rule of that category as the rule that fired.

A decision then picks the agent: an explicit override, else the rule's own agent, else the
category's agent from config, else the default agent. An agent that is not available is skipped
and the next candidate (the next matching priority rule, then the next-best category) is tried;
the reason says which agents were skipped. Everything here is pure Python (``re``), except that
:func:`load_default_rules` reads the shipped YAML file with PyYAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CATEGORIES",
    "DEFAULT_RULES_PATH",
    "MAX_ROUTE_CHARS",
    "AgentUnavailable",
    "Router",
    "RouteDecision",
    "Rule",
    "load_default_rules",
    "load_rules",
    "parse_override",
]

CATEGORIES: tuple[str, ...] = (
    "architecture",
    "backend",
    "frontend",
    "tests",
    "docs",
    "bugfix",
    "refactor",
    "devops",
)

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")

# Only this many characters of a task are matched against the rules: the head (where people
# state what they want) and the tail (where a pasted log usually ends with the actual error).
# It bounds routing time for huge pastes; the agent still receives the whole text.
MAX_ROUTE_CHARS = 4000
_HEAD_CHARS = 3000
_SNIPPET_CHARS = 40
EXTRA_FACTOR = 0.5


class AgentUnavailable(Exception):
    """No usable agent: an explicit override that is not available, or every candidate is out.

    ``agent`` is the agent that was asked for last (the override, or the default agent) and
    ``tried`` every agent that was tried, in order.
    """

    def __init__(self, agent: str, *, tried: Sequence[str] = (), detail: str = "") -> None:
        self.agent = agent
        self.tried: tuple[str, ...] = tuple(tried) or (agent,)
        if len(self.tried) > 1:
            listed = ", ".join(f'"{name}"' for name in self.tried)
            message = f"no agent is available: tried {listed}"
        else:
            message = f'agent "{agent}" is not available'
        if detail:
            message += f" ({detail})"
        super().__init__(message)


@dataclass(frozen=True)
class Rule:
    """One routing rule.

    ``pattern`` is a Python regex searched case-insensitively in the task text (scoped flags such
    as ``(?-i:...)`` work). ``weight`` decides how the rule competes: ``None`` makes it a
    priority rule (first match in list order wins over all weighted rules; use it for the user's
    own rules), a number makes it a scored rule (the defaults).
    """

    name: str
    pattern: str
    category: str
    agent: str | None = None
    require_approval: bool = False
    require_review: bool = False
    weight: float | None = None


@dataclass(frozen=True)
class RouteDecision:
    """Where a task goes and why."""

    agent: str
    category: str
    rule: str  # the rule that fired, or "override" / "default"
    reason: str
    require_approval: bool = False
    require_review: bool = False

    def to_dict(self) -> dict[str, object]:
        return dict(asdict(self))


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    regex: re.Pattern[str]
    index: int


@dataclass(frozen=True)
class _Candidate:
    """A matching rule that could decide the task: a priority rule, or a category's best rule."""

    rule: Rule
    snippet: str
    score: float | None  # the category score for weighted candidates


class Router:
    """Routes task texts with a fixed rule list; build one per config and reuse it."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        category_agents: Mapping[str, str],
        default_agent: str,
        default_category: str = "backend",
        is_available: Callable[[str], bool] = lambda a: True,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.category_agents: dict[str, str] = dict(category_agents)
        self.default_agent = default_agent
        self.default_category = default_category
        self.is_available = is_available
        priority: list[_Compiled] = []
        weighted: list[_Compiled] = []
        for index, rule in enumerate(self.rules):
            try:
                regex = re.compile(rule.pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"routing rule {rule.name!r} has an invalid pattern: {exc}") from exc
            compiled = _Compiled(rule, regex, index)
            (priority if rule.weight is None else weighted).append(compiled)
        self._priority: tuple[_Compiled, ...] = tuple(priority)
        self._weighted: tuple[_Compiled, ...] = tuple(weighted)

    # -- classification ------------------------------------------------------------------------

    def candidates(self, text: str) -> list[_Candidate]:
        """Every way the text could be routed, best first (without looking at agents)."""
        text = _clip(text)
        found: list[_Candidate] = []
        for item in self._priority:
            match = item.regex.search(text)
            if match is not None:
                found.append(_Candidate(item.rule, _snippet(match), None))
        # category -> [score, first index, best weight, best rule, best match]
        scores: dict[str, list[Any]] = {}
        for item in self._weighted:
            match = item.regex.search(text)
            if match is None:
                continue
            weight = item.rule.weight or 0.0
            entry = scores.get(item.rule.category)
            if entry is None:
                scores[item.rule.category] = [weight, item.index, weight, item.rule, match]
            else:
                entry[0] += weight
                if weight > entry[2]:
                    entry[2], entry[3], entry[4] = weight, item.rule, match
        for entry in scores.values():
            entry[0] = entry[2] + EXTRA_FACTOR * (entry[0] - entry[2])
        ranked = sorted(scores.values(), key=lambda e: (-e[0], e[1]))
        found.extend(_Candidate(e[3], _snippet(e[4]), e[0]) for e in ranked if e[0] > 0)
        return found

    def classify(self, text: str) -> tuple[str, Rule | None]:
        """The category of a task and the rule that decided it (``None`` when nothing matched)."""
        found = self.candidates(text)
        if not found:
            return self.default_category, None
        return found[0].rule.category, found[0].rule

    # -- routing -------------------------------------------------------------------------------

    def route(self, text: str, *, override: str | None = None) -> RouteDecision:
        """Decide the agent and category for ``text``; ``override`` forces an agent.

        Raises :class:`AgentUnavailable` when the override is not available, or when no
        candidate agent and not even the default agent is available.
        """
        found = self.candidates(text)
        approval = any(c.rule.require_approval for c in found)
        review = any(c.rule.require_review for c in found)
        if found:
            top = found[0]
            category, what = top.rule.category, _matched(top)
        else:
            category, what = self.default_category, "no rule matched"

        if override is not None:
            if not self.is_available(override):
                raise AgentUnavailable(override)
            return RouteDecision(
                agent=override,
                category=category,
                rule="override",
                reason=f"{override} was asked for explicitly; the task looks like {category} ({what}).",
                require_approval=approval,
                require_review=review,
            )

        skipped: list[str] = []
        for cand in found:
            agent, source = self._agent_for(cand.rule)
            if agent in skipped:
                continue
            if not self.is_available(agent):
                skipped.append(agent)
                continue
            return RouteDecision(
                agent=agent,
                category=cand.rule.category,
                rule=cand.rule.name,
                reason=f"{_matched(cand)}, so this is a {cand.rule.category} task; using {agent}, "
                f"{source}{_skips(skipped)}.",
                require_approval=approval,
                require_review=review,
            )

        agent = self.default_agent
        if not self.is_available(agent):
            raise AgentUnavailable(agent, tried=[*skipped, agent] if agent not in skipped else skipped)
        if found:
            why = f"{what}, but no agent for it is available"
        else:
            why = "no rule matched"
        return RouteDecision(
            agent=agent,
            category=category,
            rule="default",
            reason=f"{why}; using {agent}, the default agent{_skips(skipped)}.",
            require_approval=approval,
            require_review=review,
        )

    def _agent_for(self, rule: Rule) -> tuple[str, str]:
        if rule.agent:
            return rule.agent, "named by the rule"
        agent = self.category_agents.get(rule.category)
        if agent:
            return agent, f"the agent for {rule.category}"
        return self.default_agent, "the default agent"


def _clip(text: str) -> str:
    if len(text) <= MAX_ROUTE_CHARS:
        return text
    return text[:_HEAD_CHARS] + "\n" + text[-(MAX_ROUTE_CHARS - _HEAD_CHARS) :]


def _snippet(match: re.Match[str]) -> str:
    snippet = " ".join(match.group(0).split())
    if len(snippet) > _SNIPPET_CHARS:
        snippet = snippet[: _SNIPPET_CHARS - 1] + "…"
    return snippet


def _matched(cand: _Candidate) -> str:
    return f'matched "{cand.snippet}" (rule {cand.rule.name})'


def _skips(skipped: Sequence[str]) -> str:
    if not skipped:
        return ""
    return " (" + "; ".join(f"{agent} skipped: not available" for agent in skipped) + ")"


# -- overrides ---------------------------------------------------------------------------------

_OVERRIDE = re.compile(r"\s*@([^\s:,;@]+)(?:[\s:,;]+|$)(.*)\Z", re.DOTALL)


def parse_override(text: str, known_agents: Collection[str]) -> tuple[str | None, str]:
    """Split a leading ``@agent`` off a task.

    ``'@codex fix the login bug'`` gives ``('codex', 'fix the login bug')``. The mention must be
    the first word and name a known agent (compared case-insensitively; the known spelling is
    returned); anything else, such as ``@unknown fix x`` or ``mail bob@example.com``, gives
    ``(None, text)`` with the text unchanged.
    """
    match = _OVERRIDE.match(text)
    if match is None:
        return None, text
    wanted = match.group(1).casefold()
    for agent in known_agents:
        if agent.casefold() == wanted:
            return agent, match.group(2).strip()
    return None, text


# -- rule files --------------------------------------------------------------------------------


def load_rules(path: Path, *, default_weight: float | None = 1.0) -> list[Rule]:
    """Read a YAML list of ``{name, pattern, category, weight?, agent?, require_*?}`` rules.

    Rules without a weight get ``default_weight``. Raises ``ValueError`` on a malformed file.
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of rules")
    rules: list[Rule] = []
    for position, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: rule #{position} is not a mapping")
        try:
            name, pattern, category = str(item["name"]), str(item["pattern"]), str(item["category"])
        except KeyError as exc:
            raise ValueError(f"{path}: rule #{position} has no {exc.args[0]!r}") from exc
        unknown = set(item) - {"name", "pattern", "category", "weight", "agent"} - {
            "require_approval",
            "require_review",
        }
        if unknown:
            raise ValueError(f"{path}: rule {name!r} has unknown keys {sorted(unknown)}")
        weight = item.get("weight", default_weight)
        agent = item.get("agent")
        rules.append(
            Rule(
                name=name,
                pattern=pattern,
                category=category,
                agent=None if agent is None else str(agent),
                require_approval=bool(item.get("require_approval", False)),
                require_review=bool(item.get("require_review", False)),
                weight=None if weight is None else float(weight),
            )
        )
    return rules


def load_default_rules() -> list[Rule]:
    """The shipped default rules (``core/default_rules.yaml``), all weighted."""
    rules = load_rules(DEFAULT_RULES_PATH, default_weight=1.0)
    for rule in rules:
        if rule.category not in CATEGORIES:
            raise ValueError(f"default rule {rule.name!r} has unknown category {rule.category!r}")
    return rules
