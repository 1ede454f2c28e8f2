"""bots.yaml ``routing``, and the one schema of a routing rule (bots.yaml's and a rules file's)."""

from __future__ import annotations

import re

from pydantic import Field, ValidationInfo, field_validator

from core.config.fields import StrictModel


class RuleConfig(StrictModel):
    """A routing rule: a pattern searched in the task text (case-insensitive) -> a category.

    Validate with ``context={"trusted": True}`` for the shipped default rules, whose patterns are
    Python ``re`` (lookarounds allowed); every other pattern must compile with RE2.
    """

    name: str = Field(description="Names the rule in every routing decision (`orchestra route` shows it).")
    pattern: str = Field(
        description="A regular expression in RE2 syntax (no lookaround or backreferences), searched "
        "case-insensitively; `(?-i:...)` makes a part case-sensitive."
    )
    category: str = Field(description="The category a matching task gets (backend, docs, ...).")
    agent: str | None = Field(
        default=None, description="The agent to run it; null: the category's agent under routing.categories."
    )
    require_approval: bool = Field(default=False, description="A matching task waits for `approve` before it starts.")
    require_review: bool = Field(default=False, description="A matching task ends in needs_review.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str, info: ValidationInfo) -> str:
        try:
            if info.context and info.context.get("trusted"):
                re.compile(pattern, re.IGNORECASE)
            else:
                from core.routing.index import compile_rule_pattern  # RE2, imported only to compile rules

                compile_rule_pattern(pattern)  # as routing matches it: linear time, whatever the pattern
        except (ValueError, re.error) as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        return pattern


class WeightedRuleConfig(RuleConfig):
    """A rule in a rules file (the shipped ``core/default_rules.yaml``): it may also carry a weight."""

    weight: float | None = Field(
        default=None,
        description="How strongly a match votes for its category; null: a priority rule, tried in order "
        "before every weighted one (left out: the loader's default weight).",
    )


class RoutingConfig(StrictModel):
    """Which agent gets a task: your rules first, then the default rules, then the default agent."""

    default_agent: str = Field(description="Catches every task no rule or category sends elsewhere.")
    default_category: str = Field(default="backend", description="The category of a task no rule matched.")
    use_default_rules: bool = Field(
        default=True, description="Try the built-in rules for the eight categories after yours."
    )
    categories: dict[str, str] = Field(
        default_factory=dict,
        description="Which agent gets each category; a missing CLI is skipped for the next match.",
    )
    rules: list[RuleConfig] = Field(
        default_factory=list, description="Your own rules, tried in order; the first match wins over the defaults."
    )
    hosts: dict[str, str] = Field(
        default_factory=dict,
        description="Which host runs each category (a host of `hosts:`, or `local`); a host that is down is skipped.",
    )
