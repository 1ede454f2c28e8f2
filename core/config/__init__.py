"""bots.yaml, typed: validated once, every error naming its key path, no secret in it.

Every validation error names its key path (``agents.codex.max_concurrent: must be ≥ 1``).
Secrets never live in the file: an agent's ``env_from`` maps a variable the agent needs to the
name of an environment variable of ours that holds the value.

A module per part of the file (``agents``, ``routing``, ``telegram``, ``slack``, ``limits``,
``worktrees``, ``runtime``; ``schema`` holds the whole), the shared field types in ``fields``; ``loading``
finds, reads and validates it, and ``cache`` keeps the result for the next command.

Each name loads its module on first use: a command that needs only the facts of the file
(:mod:`core.config.facts`: the data dir, the secrets' names) never imports pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_attributes

if TYPE_CHECKING:
    from core.config.agents import AGENT_KINDS, AgentConfig, agent_installed, command_argv, expand_command
    from core.config.facts import ConfigFacts, load_facts
    from core.config.fields import MAX_SECONDS, EnvVarName, Seconds, StrictModel, Url
    from core.config.limits import BudgetsConfig, LimitsConfig, PolicyConfig
    from core.config.loading import PACKAGED_CONFIG, config_candidates, describe_errors, load_config, parse_config
    from core.config.routing import RoutingConfig, RuleConfig, WeightedRuleConfig
    from core.config.runtime import (
        ROLE_RANK,
        DigestConfig,
        MetricsConfig,
        NotifyConfig,
        Role,
        RolesConfig,
        TmuxConfig,
        WatchdogConfig,
    )
    from core.config.schema import Config
    from core.config.slack import SlackConfig, SlackHttpConfig
    from core.config.telegram import TelegramConfig, TelegramWebhookConfig
    from core.config.web import WebConfig
    from core.config.worktrees import WorktreesConfig

_MODULES = {
    "AGENT_KINDS": "core.config.agents",
    "AgentConfig": "core.config.agents",
    "agent_installed": "core.config.agents",
    "command_argv": "core.config.agents",
    "expand_command": "core.config.agents",
    "MAX_SECONDS": "core.config.fields",
    "EnvVarName": "core.config.fields",
    "Seconds": "core.config.fields",
    "StrictModel": "core.config.fields",
    "Url": "core.config.fields",
    "BudgetsConfig": "core.config.limits",
    "LimitsConfig": "core.config.limits",
    "PolicyConfig": "core.config.limits",
    "PACKAGED_CONFIG": "core.config.loading",
    "config_candidates": "core.config.loading",
    "describe_errors": "core.config.loading",
    "load_config": "core.config.loading",
    "parse_config": "core.config.loading",
    "RoutingConfig": "core.config.routing",
    "RuleConfig": "core.config.routing",
    "WeightedRuleConfig": "core.config.routing",
    "ROLE_RANK": "core.config.runtime",
    "DigestConfig": "core.config.runtime",
    "MetricsConfig": "core.config.runtime",
    "NotifyConfig": "core.config.runtime",
    "Role": "core.config.runtime",
    "RolesConfig": "core.config.runtime",
    "TmuxConfig": "core.config.runtime",
    "WebConfig": "core.config.web",
    "WatchdogConfig": "core.config.runtime",
    "Config": "core.config.schema",
    "SlackConfig": "core.config.slack",
    "SlackHttpConfig": "core.config.slack",
    "TelegramConfig": "core.config.telegram",
    "TelegramWebhookConfig": "core.config.telegram",
    "WorktreesConfig": "core.config.worktrees",
    "ConfigFacts": "core.config.facts",
    "load_facts": "core.config.facts",
}


__getattr__ = lazy_attributes(__name__, _MODULES)


__all__ = [
    "AGENT_KINDS",
    "MAX_SECONDS",
    "PACKAGED_CONFIG",
    "ROLE_RANK",
    "AgentConfig",
    "BudgetsConfig",
    "Config",
    "ConfigFacts",
    "DigestConfig",
    "EnvVarName",
    "LimitsConfig",
    "MetricsConfig",
    "NotifyConfig",
    "PolicyConfig",
    "Role",
    "RolesConfig",
    "RoutingConfig",
    "RuleConfig",
    "Seconds",
    "SlackConfig",
    "SlackHttpConfig",
    "StrictModel",
    "TelegramConfig",
    "TelegramWebhookConfig",
    "TmuxConfig",
    "Url",
    "WatchdogConfig",
    "WebConfig",
    "WeightedRuleConfig",
    "WorktreesConfig",
    "agent_installed",
    "command_argv",
    "config_candidates",
    "describe_errors",
    "expand_command",
    "load_config",
    "load_facts",
    "parse_config",
]
