"""Task routing: map a task's text to a category and to the agent that should run it.

The router and its decisions (``router``), the compiled patterns and their word-stem index
(``index``), and the rules with the shipped defaults (``rules``).
"""

from __future__ import annotations

from core.routing.index import StemIndex, compile_rule_pattern
from core.routing.router import (
    MAX_ROUTE_CHARS,
    RouteDecision,
    Router,
    build_router,
    leading_mention,
    parse_override,
)
from core.routing.rules import CATEGORIES, DEFAULT_RULES_PATH, Rule, load_default_rules, load_rules

__all__ = [
    "CATEGORIES",
    "DEFAULT_RULES_PATH",
    "MAX_ROUTE_CHARS",
    "RouteDecision",
    "Router",
    "Rule",
    "StemIndex",
    "build_router",
    "compile_rule_pattern",
    "leading_mention",
    "load_default_rules",
    "load_rules",
    "parse_override",
]
