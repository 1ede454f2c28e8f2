"""Routing rules: the :class:`Rule` a router matches, the shipped default rules, and rules files.

A rules file is a YAML list of rules in the same schema as ``routing.rules`` in bots.yaml
(:class:`core.config.routing.RuleConfig`), plus an optional ``weight``
(:class:`core.config.routing.WeightedRuleConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import RulesFileError

if TYPE_CHECKING:
    from core.config.routing import RuleConfig

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

DEFAULT_RULES_PATH = Path(__file__).resolve().parent.parent / "default_rules.yaml"


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

    @classmethod
    def from_config(cls, rule: RuleConfig, *, weight: float | None = None, trusted: bool = False) -> Rule:
        """The rule a validated :class:`RuleConfig` describes (a priority rule unless ``weight``)."""
        return cls(
            name=rule.name,
            pattern=rule.pattern,
            category=rule.category,
            agent=rule.agent,
            require_approval=rule.require_approval,
            require_review=rule.require_review,
            weight=weight,
            trusted=trusted,
        )


def load_rules(path: Path, *, default_weight: float | None = 1.0, trusted: bool = False) -> list[Rule]:
    """Read a YAML list of ``{name, pattern, category, weight?, agent?, require_*?}`` rules.

    Rules without a ``weight`` get ``default_weight``; ``trusted`` rules use Python's ``re``
    (see :class:`Rule`), the others must compile with RE2. Raises :class:`RulesFileError` (a
    ``ValueError``, one line naming the rule and the key) on a malformed file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesFileError(f"{path}: cannot read the rules ({exc})") from None
    return _parse_rules(path, text, default_weight=default_weight, trusted=trusted)


def load_default_rules() -> list[Rule]:
    """The shipped default rules (``core/default_rules.yaml``), all weighted and trusted.

    Cached like bots.yaml (:mod:`core.config.cache`), with the word stems of their patterns:
    unchanged, they are read without YAML, validation or parsing a pattern.
    """
    from core.config.cache import FileCache, read_file
    from core.routing.index import remember_stems, stems_of

    raw, info = read_file(DEFAULT_RULES_PATH)
    cache = FileCache(DEFAULT_RULES_PATH, raw, info, kind="rules")
    cached = cache.get(_is_cached_rules)
    if cached is not None:
        rules, stems = cached
        remember_stems(stems)
        return list(rules)
    rules = tuple(_parse_rules(DEFAULT_RULES_PATH, raw.decode("utf-8"), default_weight=1.0, trusted=True))
    for rule in rules:
        if rule.category not in CATEGORIES:
            raise RulesFileError(f"default rule {rule.name!r} has unknown category {rule.category!r}")
    cache.put((rules, stems_of([rule.pattern for rule in rules])))
    return list(rules)


def _is_cached_rules(value: Any) -> bool:
    """``(rules, stems)`` as :func:`load_default_rules` stores it."""
    if type(value) is not tuple or len(value) != 2:
        return False
    rules, stems = value
    return type(rules) is tuple and all(type(rule) is Rule for rule in rules) and type(stems) is dict


def _parse_rules(path: Path, text: str, *, default_weight: float | None, trusted: bool) -> list[Rule]:
    import yaml
    from pydantic import ValidationError

    from core.config.loading import describe_errors
    from core.config.routing import WeightedRuleConfig

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RulesFileError(f"{path}: cannot read YAML ({first})") from None
    if not isinstance(data, list):
        raise RulesFileError(f"{path}: expected a list of rules")
    rules: list[Rule] = []
    for position, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise RulesFileError(f"{path}: rule #{position} is not a mapping")
        try:
            entry = WeightedRuleConfig.model_validate(item, context={"trusted": trusted})
        except ValidationError as exc:
            raise RulesFileError(f"{path}: rule #{position}: {describe_errors(exc)}") from None
        weight = entry.weight if "weight" in entry.model_fields_set else default_weight
        rules.append(Rule.from_config(entry, weight=weight, trusted=trusted))
    return rules
