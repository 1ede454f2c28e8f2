"""The router: a task's text (and an ``@agent`` override) -> a category, an agent and the reason why.

Two kinds of rules feed one :class:`Router`:

* **Priority rules** (``weight is None``): the user's own rules from bots.yaml. They are tried in
  list order and the first one that matches beats every weighted rule.
* **Weighted rules** (``weight`` is a number): the shipped defaults in ``default_rules.yaml``.
  Each matching weighted rule votes for its category. A category's score is its strongest
  matching weight plus half of its other matching weights, so a clear intent signal ("refactor",
  "unit tests") is not outvoted by a pile of weak area hints ("page", "form", "api"). The best
  score wins; ties go to the category whose first matching rule comes first in the list. The
  strongest matching rule of that category is the rule reported as having fired.

Then the agent: an explicit override, else the rule's own agent, else the category's agent from
config, else the default agent. An agent that is not available is skipped and the next candidate
(the next matching priority rule, then the next-best category) is tried; the reason says which
agents were skipped. Matching itself is :class:`core.routing.index.StemIndex`'s.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from core.errors import AgentUnavailable
from core.routing.index import StemIndex
from core.routing.rules import Rule, load_default_rules
from core.text import clip

if TYPE_CHECKING:
    from core.config import Config

# Only this many characters of a task are matched against the rules: the head (where people say
# what they want) and the tail (where a pasted log ends with the actual error). It bounds the
# routing time of huge pastes; the agent still receives the whole text.
MAX_ROUTE_CHARS = 4000
_HEAD_CHARS = 3000

# How much the second and later matching rules of a category add to its score.
EXTRA_MATCH_FACTOR = 0.5

_SNIPPET_CHARS = 40
_SURROGATE = re.compile("[\ud800-\udfff]")


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
class _Candidate:
    """A way the task could be routed: a matching priority rule, or a category's best rule."""

    rule: Rule
    snippet: str  # the text the rule matched, shortened
    score: float | None  # the category score, for weighted rules


class Router:
    """Routes task texts with a fixed list of rules; build one per config and reuse it.

    Raises ``ValueError`` naming the rule when a rule's pattern does not compile.
    """

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
        self.index = StemIndex(self.rules)

    def with_agents(self, category_agents: Mapping[str, str], default_agent: str) -> Router:
        """The same rules (compiled once, shared) with other agents: a project's ``agent`` and ``categories``."""
        routed = copy.copy(self)
        routed.category_agents, routed.default_agent = dict(category_agents), default_agent
        return routed

    # -- classification ------------------------------------------------------------------------

    def _candidates(self, text: str) -> tuple[list[_Candidate], str | None, str | None]:
        """Every way ``text`` could be routed, best first, before agents are considered.

        Also the first matching rule that requires approval, and the first that requires review.
        """
        text = _clip(text)
        if self.index.uses_re2 and not text.isascii():
            text = _SURROGATE.sub("\ufffd", text)  # RE2 takes UTF-8, which has no lone surrogates; same length
        found: list[_Candidate] = []
        approval: str | None = None
        review: str | None = None
        # category -> [total weight, first rule index, best weight, best rule, best match]
        scores: dict[str, list[Any]] = {}
        for index, match in self.index.matches(text):
            rule = self.rules[index]
            if rule.require_approval and approval is None:
                approval = rule.name
            if rule.require_review and review is None:
                review = rule.name
            if rule.weight is None:
                found.append(_Candidate(rule, _snippet(match), None))
                continue
            entry = scores.get(rule.category)
            if entry is None:
                scores[rule.category] = [rule.weight, index, rule.weight, rule, match]
                continue
            entry[0] += rule.weight
            if rule.weight > entry[2]:
                entry[2], entry[3], entry[4] = rule.weight, rule, match
        ranked: list[tuple[float, int, Rule, Any]] = []
        for total, first, best, rule, match in scores.values():
            score = best + EXTRA_MATCH_FACTOR * (total - best)
            if score > 0:
                ranked.append((score, first, rule, match))
        ranked.sort(key=lambda item: (-item[0], item[1]))
        found.extend(_Candidate(rule, _snippet(match), score) for score, _, rule, match in ranked)
        return found, approval, review

    def classify(self, text: str) -> tuple[str, Rule | None]:
        """The category of ``text`` and the rule that decided it (``None``: nothing matched)."""
        found, _, _ = self._candidates(text)
        if not found:
            return self.default_category, None
        return found[0].rule.category, found[0].rule

    # -- routing -------------------------------------------------------------------------------

    def route(self, text: str, *, override: str | None = None) -> RouteDecision:
        """Decide the agent and the category for ``text``; ``override`` forces the agent.

        ``require_approval`` / ``require_review`` are set when any matching rule asks for them,
        whichever agent ends up running the task; the reason names that rule when it is not the
        rule that fired. Raises :class:`AgentUnavailable` when the override is not available, or
        when no candidate agent, not even the default, is.
        """
        found, approval_by, review_by = self._candidates(text)
        decide = partial(_decision, approval_by=approval_by, review_by=review_by)
        if found:
            category, what = found[0].rule.category, _matched(found[0])
        else:
            category, what = self.default_category, "no rule matched"

        if override is not None:
            if not self.is_available(override):
                raise AgentUnavailable(override)
            return decide(
                override,
                category,
                "override",
                f"{override} was asked for explicitly; the task looks like {category} ({what})",
            )

        skipped: list[str] = []
        for cand in found:
            agent, source = self._agent_for(cand.rule)
            if agent in skipped:
                continue
            if not self.is_available(agent):
                skipped.append(agent)
                continue
            # The category is what the text is about (the best match) even when its agent is
            # missing and a later candidate supplies the agent: estimates and stats stay honest.
            if cand is found[0]:
                why = f"{_matched(cand)}, so this is {_a(category)} task; using {agent}, {source}"
            else:
                why = f"{what}, so this is {_a(category)} task; using {agent}, {source} (rule {cand.rule.name})"
            return decide(agent, category, found[0].rule.name, why + _skips(skipped))

        agent = self.default_agent
        if not self.is_available(agent):
            raise AgentUnavailable(agent, tried=skipped if agent in skipped else [*skipped, agent])
        why = f"{what}, but no agent for it is available" if found else what
        return decide(agent, category, "default", f"{why}; using {agent}, the default agent{_skips(skipped)}")

    def _agent_for(self, rule: Rule) -> tuple[str, str]:
        if rule.agent:
            return rule.agent, "named by the rule"
        agent = self.category_agents.get(rule.category)
        if agent:
            return agent, f"the agent for {rule.category}"
        return self.default_agent, "the default agent"


def build_router(config: Config, *, available: Callable[[str], bool] | None = None) -> Router:
    """The router of a config: its own rules, then (unless turned off) the default rules.

    An agent is available when it is configured, enabled and its CLI is installed (looked up once
    per agent); ``available`` replaces that test.
    """
    from core.config import agent_installed

    rules = [Rule.from_config(rule) for rule in config.routing.rules]
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


def _decision(
    agent: str, category: str, rule: str, reason: str, *, approval_by: str | None, review_by: str | None
) -> RouteDecision:
    """Build a decision; the reason (given without its final period) names a flagging rule."""
    for flag, by in (("approval", approval_by), ("review", review_by)):
        if by is not None and by != rule:
            reason += f"; rule {by} asks for {flag}"
    return RouteDecision(
        agent=agent,
        category=category,
        rule=rule,
        reason=reason + ".",
        require_approval=approval_by is not None,
        require_review=review_by is not None,
    )


def _a(word: str) -> str:
    """``a backend``, ``an architecture``: the article by the first letter (categories are plain words)."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def _clip(text: str) -> str:
    if len(text) <= MAX_ROUTE_CHARS:
        return text
    return text[:_HEAD_CHARS] + "\n" + text[-(MAX_ROUTE_CHARS - _HEAD_CHARS) :]


def _snippet(match: Any) -> str:
    return clip(match.group(0), _SNIPPET_CHARS)


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
    the first word (leading whitespace is fine) and name a known agent, compared
    case-insensitively; the known spelling is returned. Anything else, such as ``@unknown fix x``
    or ``mail bob@example.com``, gives ``(None, text)`` with the text unchanged.
    """
    match = _OVERRIDE.match(text)
    if match is None:
        return None, text
    wanted = match.group(1).casefold()
    for agent in known_agents:
        if agent.casefold() == wanted:
            return agent, match.group(2).strip()
    return None, text


_MENTION = re.compile(r"\s*@([A-Za-z][A-Za-z0-9_-]{0,31})(?=[\s:,;]|\Z)")


def leading_mention(text: str) -> str | None:
    """The name in a leading ``@name`` that is shaped like an agent's (``@nosuchagent fix it``).

    ``None`` for mid-text or email-like mentions (``mail bob@example.com``) and for leading
    words no agent could be called (``@types/node``): those stay part of the task text.
    """
    match = _MENTION.match(text)
    return match.group(1) if match else None
