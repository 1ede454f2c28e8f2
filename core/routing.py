"""Task routing: map a task's text to a category and to the agent that should run it.

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
agents were skipped.

Bounded: a rule the user wrote is matched by RE2, whose time is linear in the text whatever the
pattern (``(a+)+$`` cannot freeze routing); RE2 has no lookaround and no backreferences, so
such patterns are refused when bots.yaml is loaded. Only the shipped default rules
(``trusted``) use Python's ``re``, lookarounds included.

Speed: every pattern is compiled once. Most rule branches start with ``\\b`` and a literal word
stem, so a match can only begin at a word that starts with that stem. ``Router`` works those
stems out of each parsed pattern, looks the task's words up in an index and calls
``regex.match`` only at those words; patterns it cannot analyse are searched in full. The result
is exactly what ``regex.search`` would give, only faster.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import re2
import yaml

from core.errors import AgentUnavailable, RulesFileError

__all__ = [
    "CATEGORIES",
    "DEFAULT_RULES_PATH",
    "MAX_ROUTE_CHARS",
    "RouteDecision",
    "Router",
    "Rule",
    "compile_rule_pattern",
    "leading_mention",
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

# Only this many characters of a task are matched against the rules: the head (where people say
# what they want) and the tail (where a pasted log ends with the actual error). It bounds the
# routing time of huge pastes; the agent still receives the whole text.
MAX_ROUTE_CHARS = 4000
_HEAD_CHARS = 3000

# How much the second and later matching rules of a category add to its score.
EXTRA_MATCH_FACTOR = 0.5

_SNIPPET_CHARS = 40


@dataclass(frozen=True)
class Rule:
    """One routing rule.

    ``pattern`` is searched case-insensitively in the task text (scoped flags such as
    ``(?-i:...)`` work): in RE2 syntax, or in Python's ``re`` syntax when ``trusted`` (the shipped
    default rules, reviewed here, may use lookarounds; RE2 bounds the matching time of every
    other rule). ``weight`` decides how the rule competes: ``None`` (the default)
    makes it a priority rule, as for the user's own rules: the first one that matches, in list
    order, wins over all weighted rules. A number makes it a scored rule, as for the defaults.
    """

    name: str
    pattern: str
    category: str
    agent: str | None = None
    require_approval: bool = False
    require_review: bool = False
    weight: float | None = None
    trusted: bool = False


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
    """Routes task texts with a fixed list of rules; build one per config and reuse it."""

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
        self._regexes: list[Any] = []  # a compiled ``re`` pattern, or an RE2 one for untrusted rules
        self._unindexed: list[int] = []  # rules whose pattern could not be analysed
        # RE2's \b and \w are ASCII-only while the index splits words the Unicode way: for
        # non-ASCII texts these rules are searched in full.
        self._ascii_only: list[int] = []
        # The stem index. ``_long`` / ``_short`` serve any text; ``_ascii`` serves ASCII texts with
        # one lookup per word: it also files one- and two-letter stems under every ASCII key
        # they can begin (``ci`` under ``ci``, ``cia``, ``cib``, ...).
        self._long: dict[str, list[tuple[str, int]]] = {}  # stem[:3] -> [(stem, rule index)]
        self._short: dict[str, list[int]] = {}  # one- or two-letter stem -> [rule index]
        self._ascii: dict[str, list[tuple[str, int]]] = {}  # word[:3] -> [(stem, rule index)]
        for index, rule in enumerate(self.rules):
            try:
                regex = re.compile(rule.pattern, re.IGNORECASE) if rule.trusted else compile_rule_pattern(rule.pattern)
            except (re.error, ValueError) as exc:
                raise ValueError(f"routing rule {rule.name!r} has an invalid pattern: {exc}") from None
            self._regexes.append(regex)
            stems = _word_stems(rule.pattern)
            if stems is None:
                self._unindexed.append(index)
                continue
            if not rule.trusted:
                self._ascii_only.append(index)
            for stem in stems:
                if len(stem) >= 3:
                    self._long.setdefault(stem[:3], []).append((stem, index))
                    self._ascii.setdefault(stem[:3], []).append((stem, index))
                    continue
                self._short.setdefault(stem, []).append(index)
                keys, frontier = [stem], [stem]
                while len(frontier[0]) < 3:
                    frontier = [key + char for key in frontier for char in _ASCII_WORD]
                    keys += frontier
                for key in keys:
                    self._ascii.setdefault(key, []).append((stem, index))
        self._ascii_only_set = frozenset(self._ascii_only)
        self._uses_re2 = not all(rule.trusted for rule in self.rules)

    # -- matching ------------------------------------------------------------------------------

    def _matches(self, text: str) -> list[tuple[int, Any]]:
        """Every rule that matches ``text``, in rule order, with its leftmost match."""
        starts = self._word_starts(text)
        found: list[tuple[int, Any]] = []
        if starts is None:  # the folded text is not aligned with the original: search everything
            for index, regex in enumerate(self._regexes):
                match = regex.search(text)
                if match is not None:
                    found.append((index, match))
            return found
        full = self._unindexed if text.isascii() else [*self._unindexed, *self._ascii_only]
        for index in full:
            match = self._regexes[index].search(text)
            if match is not None:
                found.append((index, match))
        for index, positions in starts.items():
            regex = self._regexes[index]
            for pos in positions:
                match = regex.match(text, pos)
                if match is not None:
                    found.append((index, match))
                    break
        found.sort(key=lambda item: item[0])
        return found

    def _word_starts(self, text: str) -> dict[int, list[int]] | None:
        """For each indexed rule, the word starts where one of its stems begins (ascending)."""
        starts: dict[int, list[int]] = {}
        if text.isascii():
            ascii_index = self._ascii
            for word in _WORD.finditer(text.lower()):
                token = word.group()
                entries = ascii_index.get(token[:3])
                if entries is None:
                    continue
                start = word.start()
                for stem, index in entries:
                    if token.startswith(stem):
                        positions = starts.get(index)
                        if positions is None:
                            starts[index] = [start]
                        elif positions[-1] != start:
                            positions.append(start)
            return starts
        folded = text.translate(_FOLD).lower()
        if len(folded) != len(text):
            return None
        ascii_only = self._ascii_only_set
        long_index, short_index = self._long, self._short
        for word in _WORD.finditer(text):
            start, end = word.span()
            token = folded[start:end]
            hits: list[int] = []
            entries = long_index.get(token[:3])
            if entries is not None:
                hits.extend(index for stem, index in entries if token.startswith(stem))
            if short_index:
                hits.extend(short_index.get(token[:1], ()))
                if len(token) > 1:
                    hits.extend(short_index.get(token[:2], ()))
            for index in hits:
                if index in ascii_only:
                    continue
                positions = starts.get(index)
                if positions is None:
                    starts[index] = [start]
                elif positions[-1] != start:
                    positions.append(start)
        return starts

    # -- classification ------------------------------------------------------------------------

    def _candidates(self, text: str) -> tuple[list[_Candidate], str | None, str | None]:
        """Every way ``text`` could be routed, best first, before agents are considered.

        Also the first matching rule that requires approval, and the first that requires review.
        """
        text = _clip(text)
        if self._uses_re2 and not text.isascii():
            text = _SURROGATE.sub("\ufffd", text)  # RE2 takes UTF-8, which has no lone surrogates; same length
        found: list[_Candidate] = []
        approval: str | None = None
        review: str | None = None
        # category -> [total weight, first rule index, best weight, best rule, best match]
        scores: dict[str, list[Any]] = {}
        for index, match in self._matches(text):
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


# -- user patterns: RE2 ---------------------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.case_sensitive = False
_RE2_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr itself
_SURROGATE = re.compile("[\ud800-\udfff]")


def compile_rule_pattern(pattern: str) -> Any:
    """Compile a user's rule pattern with RE2 (case-insensitive); ``ValueError`` when RE2 refuses it.

    RE2 matches in time linear in the text, so no pattern can stall routing; in exchange it has
    no lookaround, no backreferences and a cap on the compiled size.
    """
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        hint = ""
        if "perl operator" in str(detail) or re.search(r"escape sequence: \\[1-9]", str(detail)):
            hint = "; rules use RE2 syntax, which has no lookaround or backreferences"
        raise ValueError(f"{detail}{hint}") from None


# -- the word-stem index -----------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_ASCII_WORD = "abcdefghijklmnopqrstuvwxyz0123456789_"

# Case folding for the index, one character to one: ``str.lower`` plus the four non-ASCII
# characters that IGNORECASE matches to an ASCII letter but ``lower`` does not turn into it
# (U+0130 would even become two characters). Stems are ASCII only, so this is all it takes.
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}

_sre: Any = importlib.import_module("re._parser")
_C: Any = importlib.import_module("re._constants")
_REPEATS = {_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", _C.MAX_REPEAT)}
_BOUNDARIES = {_C.AT_BOUNDARY, _C.AT_UNI_BOUNDARY, _C.AT_BEGINNING, _C.AT_BEGINNING_STRING}


def _word_stems(pattern: str) -> frozenset[str] | None:
    """Literal stems that every match of ``pattern`` starts with, at the start of a word.

    ``\\b(docker\\w*|k8s|(the )?helm)`` gives ``{"docker", "k8s", "the", "helm"}``: any match
    begins at a word that starts with one of them (case-insensitively). ``None`` when that
    cannot be shown (a branch starts with ``\\w``, ``.``, a class, is not at a word boundary,
    ...); such patterns are simply searched in full.
    """
    try:
        parsed = _sre.parse(pattern, re.IGNORECASE)
        stems = _seq_stems(list(parsed), False)
    except (re.error, TypeError, ValueError, LookupError, AttributeError, RecursionError):
        return None  # a construct this walker does not know: search in full
    if not stems or not all(stem.isascii() for stem in stems):
        return None
    return frozenset(stems)


def _seq_stems(items: list[Any], bounded: bool) -> set[str] | None:
    """Stems for a sequence of parsed regex items (see :func:`_word_stems`)."""
    i = 0
    while i < len(items):
        op, av = items[i]
        if op is _C.AT and av in _BOUNDARIES:
            bounded = True
        elif op is _C.AT and av in (_C.AT_NON_BOUNDARY, _C.AT_UNI_NON_BOUNDARY):
            bounded = False
        elif op not in (_C.ASSERT, _C.ASSERT_NOT):  # lookarounds consume nothing: skip them
            break
        i += 1
    if i == len(items):
        return None
    op, av = items[i]
    rest = items[i + 1 :]
    if op is _C.LITERAL:
        if not bounded:
            return None
        chars = []
        for item_op, item_av in items[i:]:
            if item_op is not _C.LITERAL:
                break
            chars.append(chr(item_av))
        stem = _WORD.match("".join(chars).translate(_FOLD).lower())
        return {stem.group()} if stem else None
    if op is _C.SUBPATTERN:
        return _seq_stems(list(av[-1]) + rest, bounded)
    if op is _C.BRANCH:
        stems: set[str] = set()
        for alternative in av[1]:
            found = _seq_stems(list(alternative) + rest, bounded)
            if found is None:
                return None
            stems |= found
        return stems
    if op in _REPEATS:
        low, _, body = av
        taken = _seq_stems(list(body), bounded)  # the repeated body alone: its prefix is safe
        if low >= 1 or taken is None:
            return taken
        skipped = _seq_stems(rest, bounded)
        return None if skipped is None else taken | skipped
    return None


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


# -- rule files --------------------------------------------------------------------------------

_RULE_KEYS = {"name", "pattern", "category", "weight", "agent", "require_approval", "require_review"}


def load_rules(path: Path, *, default_weight: float | None = 1.0, trusted: bool = False) -> list[Rule]:
    """Read a YAML list of ``{name, pattern, category, weight?, agent?, require_*?}`` rules.

    Rules without a ``weight`` get ``default_weight``; ``trusted`` rules use Python's ``re``
    (see :class:`Rule`). Raises :class:`RulesFileError` (a
    ``ValueError``) on a malformed file.
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise RulesFileError(f"{path}: expected a list of rules")
    rules: list[Rule] = []
    for position, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise RulesFileError(f"{path}: rule #{position} is not a mapping")
        missing = [key for key in ("name", "pattern", "category") if key not in item]
        if missing:
            raise RulesFileError(f"{path}: rule #{position} has no {', '.join(missing)}")
        unknown = set(item) - _RULE_KEYS
        if unknown:
            raise RulesFileError(f"{path}: rule {item['name']!r} has unknown keys {sorted(unknown)}")
        weight = item.get("weight", default_weight)
        agent = item.get("agent")
        rules.append(
            Rule(
                name=str(item["name"]),
                pattern=str(item["pattern"]),
                category=str(item["category"]),
                agent=None if agent is None else str(agent),
                require_approval=bool(item.get("require_approval", False)),
                require_review=bool(item.get("require_review", False)),
                weight=None if weight is None else float(weight),
                trusted=trusted,
            )
        )
    return rules


def load_default_rules() -> list[Rule]:
    """The shipped default rules (``core/default_rules.yaml``, next to this module), all weighted."""
    rules = load_rules(DEFAULT_RULES_PATH, default_weight=1.0, trusted=True)
    for rule in rules:
        if rule.category not in CATEGORIES:
            raise RulesFileError(f"default rule {rule.name!r} has unknown category {rule.category!r}")
    return rules
