"""bots.yaml, typed: validated once, every error naming its key path, no secret in it.

Every validation error names its key path (``agents.codex.max_concurrent: must be ≥ 1``).
Secrets never live in the file: an agent's ``env_from`` maps a variable the agent needs to the
name of an environment variable of ours that holds the value.

A module per part of the file (``agents``, ``routing``, ``telegram``, ``slack``, ``limits``,
``runtime``; ``schema`` holds the whole), the shared field types in ``fields``; ``loading``
finds, reads and validates it, and ``cache`` keeps the result for the next command.
"""

from __future__ import annotations

from core.config.agents import AGENT_KINDS, AgentConfig, agent_installed, command_argv, expand_command
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

__all__ = [
    "AGENT_KINDS",
    "MAX_SECONDS",
    "PACKAGED_CONFIG",
    "ROLE_RANK",
    "AgentConfig",
    "BudgetsConfig",
    "Config",
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
    "WeightedRuleConfig",
    "agent_installed",
    "command_argv",
    "config_candidates",
    "describe_errors",
    "expand_command",
    "load_config",
    "parse_config",
]
