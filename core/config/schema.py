"""The whole of bots.yaml: :class:`Config`, its cross-references, and what it says about agents and secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from core.config.agents import AgentConfig, command_argv
from core.config.facts import data_home, secrets_in_environment
from core.config.fields import StrictModel, is_name
from core.config.files import FilesConfig, VoiceConfig
from core.config.hosts import LOCAL_HOST, HostConfig
from core.config.limits import BudgetsConfig, LimitsConfig, PolicyConfig
from core.config.permissions import PermissionsConfig
from core.config.plans import PlansConfig
from core.config.projects import ProjectConfig
from core.config.routing import RoutingConfig
from core.config.runtime import DigestConfig, MetricsConfig, NotifyConfig, RolesConfig, TmuxConfig, WatchdogConfig
from core.config.schedules import ScheduleConfig
from core.config.slack import SlackConfig
from core.config.telegram import WEBHOOK_SECRET_ENV, TelegramConfig
from core.config.triggers import TriggersConfig
from core.config.web import WebConfig
from core.config.worktrees import WorktreesConfig

if TYPE_CHECKING:
    from core.agents.base import AgentSettings
    from core.permissions.policy import Policy


class Config(StrictModel):
    """bots.yaml, validated: read-only, and holding no secret (only the names of the variables that do)."""

    version: Literal[1] = Field(default=1, description="The format of this file.")
    data_dir: str | None = Field(
        default=None,
        description="Where the store, task logs and the engine socket live; $ORCHESTRA_HOME wins over it; "
        "null: the user's data dir (~/.local/share/orchestra).",
    )
    workspace: str | None = Field(
        default=None,
        description="The working directory of tasks from chat (the CLI uses the current directory).",
    )
    projects: dict[str, ProjectConfig] = Field(
        default_factory=dict, description="The repositories tasks run in, by name (used in `#name` and --project)."
    )
    default_project: str | None = Field(
        default=None, description="The project of a task that names none; null: `workspace` (chat) or the cwd (CLI)."
    )
    tmux: TmuxConfig = Field(default_factory=TmuxConfig, description="Orchestra's own tmux server.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Bounds on tasks and the engine.")
    worktrees: WorktreesConfig = Field(
        default_factory=WorktreesConfig, description="How long finished tasks' worktrees stay; spare checkouts."
    )
    schedules: list[ScheduleConfig] = Field(
        default_factory=list, description="Tasks that start on their own at cron times (README: Schedules)."
    )
    triggers: TriggersConfig = Field(
        default_factory=TriggersConfig, description="Signed webhooks that start tasks (off by default)."
    )
    plans: PlansConfig = Field(default_factory=PlansConfig, description="Multi-step plans: templates, planner.")
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig, description="What tasks may cost.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="What waits for a person's approval.")
    permissions: PermissionsConfig = Field(
        default_factory=PermissionsConfig, description="Which tool calls run, are asked on the phone, or are refused."
    )
    agents: dict[str, AgentConfig] = Field(description="The agent CLIs, by name (used in `@name` and routing).")
    hosts: dict[str, HostConfig] = Field(
        default_factory=dict,
        description="Other machines tasks can run on over SSH, by name (`@host:NAME`, --host); `local` is this one.",
    )
    routing: RoutingConfig = Field(description="Which agent gets a task.")
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description="Where notifications go besides chats.")
    telegram: TelegramConfig = Field(default_factory=TelegramConfig, description="The Telegram bridge.")
    slack: SlackConfig = Field(default_factory=SlackConfig, description="The Slack bridge.")
    digest: DigestConfig = Field(default_factory=DigestConfig, description="The morning digest.")
    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig, description="The alert on silent tasks.")
    roles: RolesConfig = Field(default_factory=RolesConfig, description="Who may do what in the chats.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="The Prometheus endpoint.")
    web: WebConfig = Field(default_factory=WebConfig, description="The live web dashboard and Telegram Mini App.")
    files: FilesConfig = Field(default_factory=FilesConfig, description="Files sent with tasks, and sent back.")
    voice: VoiceConfig = Field(default_factory=VoiceConfig, description="Voice notes as tasks (transcription).")

    @model_validator(mode="after")
    def _cross_refs(self) -> Config:
        for name in self.agents:
            if not is_name(name):
                raise ValueError(f"agents.{name}: agent names are lowercase letters, digits, '-' or '_'")
        known = set(self.agents)
        if self.routing.default_agent not in known:
            raise ValueError(f"routing.default_agent: {self.routing.default_agent!r} is not a configured agent")
        for category, agent in self.routing.categories.items():
            if agent not in known:
                raise ValueError(f"routing.categories.{category}: {agent!r} is not a configured agent")
        for i, rule in enumerate(self.routing.rules):
            if rule.agent is not None and rule.agent not in known:
                raise ValueError(f"routing.rules.{i}.agent: {rule.agent!r} is not a configured agent")
        self._project_refs(known)
        self._host_refs(known)
        names: set[str] = set()
        for i, schedule in enumerate(self.schedules):
            if schedule.name in names:
                raise ValueError(f"schedules.{i}.name: {schedule.name!r} is used twice")
            names.add(schedule.name)
            if schedule.agent is not None and schedule.agent not in known:
                raise ValueError(f"schedules.{i}.agent: {schedule.agent!r} is not a configured agent")
            if schedule.project is not None and schedule.project not in self.projects:
                raise ValueError(f"schedules.{i}.project: {schedule.project!r} is not a project of bots.yaml")
        if self.plans.planner is not None and self.plans.planner not in known:
            raise ValueError(f"plans.planner: {self.plans.planner!r} is not a configured agent")
        for category, agent in self.plans.fallback.items():
            if agent not in known:
                raise ValueError(f"plans.fallback.{category}: {agent!r} is not a configured agent")
        for name, template in self.plans.templates.items():
            for i, step in enumerate(template.steps):
                if step.agent is not None and step.agent not in known:
                    raise ValueError(
                        f"plans.templates.{name}.steps.{i}.agent: {step.agent!r} is not a configured agent"
                    )
        return self

    def _host_refs(self, agents: set[str]) -> None:
        for name, host in self.hosts.items():
            if not is_name(name) or name == LOCAL_HOST:
                raise ValueError(f"hosts.{name}: host names are lowercase letters, digits, '-' or '_', not 'local'")
            for agent in host.agents:
                if agent not in agents:
                    raise ValueError(f"hosts.{name}.agents: {agent!r} is not a configured agent")
        places = {LOCAL_HOST, *self.hosts}
        for category, host_name in self.routing.hosts.items():
            if host_name not in places:
                raise ValueError(f"routing.hosts.{category}: {host_name!r} is not a host of bots.yaml")
        for name, agent_config in self.agents.items():
            if agent_config.host is not None and agent_config.host not in places:
                raise ValueError(f"agents.{name}.host: {agent_config.host!r} is not a host of bots.yaml")

    def _project_refs(self, agents: set[str]) -> None:
        bound: dict[str, str] = {}
        for name, project in self.projects.items():
            if not is_name(name):
                raise ValueError(f"projects.{name}: project names are lowercase letters, digits, '-' or '_'")
            if project.agent is not None and project.agent not in agents:
                raise ValueError(f"projects.{name}.agent: {project.agent!r} is not a configured agent")
            for category, agent in project.categories.items():
                if agent not in agents:
                    raise ValueError(f"projects.{name}.categories.{category}: {agent!r} is not a configured agent")
            for chat in project.chats:
                if chat in bound:
                    raise ValueError(f"projects.{name}.chats: {chat} is already bound to project {bound[chat]}")
                bound[chat] = name
        if self.default_project is not None and self.default_project not in self.projects:
            known = ", ".join(sorted(self.projects)) or "none"
            raise ValueError(f"default_project: {self.default_project!r} is not a project (projects: {known})")

    def home(self) -> Path:
        """The data directory: $ORCHESTRA_HOME, else ``data_dir``, else the user's data dir."""
        return data_home(self.data_dir)

    def agent_settings(self, name: str) -> AgentSettings:
        """An agent's settings with its literal (non-secret) environment and its hook, if it has one."""
        from core.agents import hooked
        from core.agents.base import AgentSettings
        from core.permissions.hook import hook_command

        agent = self.agents[name]
        command, *prefix = command_argv(agent.command)
        hook = hook_command(agent.kind) if agent.hook and hooked(agent.kind) else ""
        return AgentSettings(
            hook=hook,
            hook_timeout_s=int(self.permissions.ask_timeout_s) + 60 if hook else 0,
            name=name,
            kind=agent.kind,
            command=command,
            prefix_args=prefix,
            args=list(agent.args),
            env=dict(agent.env),
            model=agent.model,
            config_dir=str(self.home() / "agents" / name),
        )

    def permission_policy(
        self, agent: str, category: str, cwd: str, run_time: dict[str, list[str]] | None = None
    ) -> Policy:
        """The layers that judge a task's tool calls: the rules an admin set at run time (``run_time``,
        from the store), the task's category's, its agent's, then the global lists."""
        from core.permissions.policy import RUN_TIME, Layer, Policy

        rules = self.permissions
        layers = []
        if run_time and any(run_time.values()):
            layers.append(Layer.of(RUN_TIME, run_time))
        if category in rules.categories:
            layers.append(Layer.of(f"category {category}", rules.categories[category].model_dump()))
        if agent in self.agents:
            layers.append(Layer.of(f"agent {agent}", self.agents[agent].permissions.model_dump()))
        layers.append(Layer.of("permissions", rules.model_dump(include={"allow", "ask", "deny"})))
        return Policy(cwd=cwd, layers=tuple(layers), ask_timeout_s=rules.ask_timeout_s, on_timeout=rules.on_timeout)

    def secret_env(self, name: str) -> dict[str, str]:
        """The agent's ``env_from`` variables resolved from our environment.

        They reach the agent only through its launch handoff (``core.launch``: a mode-600 file the
        launcher deletes as it reads it), never a command line, and are redacted everywhere else.
        """
        env = {}
        for key, source in self.agents[name].env_from.items():
            value = os.environ.get(source)
            if value is not None:
                env[key] = value
        return env

    def channels(self) -> list[str]:
        """Where notifications go: the console, and each enabled chat transport (all its notify chats)."""
        channels = ["console"] if self.notify.console else []
        if self.telegram.enabled:
            channels.append("telegram")
        if self.slack.enabled:
            channels.append("slack")
        return channels

    def secret_sources(self) -> list[str]:
        """The names of every environment variable the config says holds a secret: all agents'
        ``env_from`` values, the chat tokens, the signing and webhook secrets (names only, no value)."""
        sources = [source for agent in self.agents.values() for source in agent.env_from.values()]
        sources.append(self.telegram.token_env)
        sources += [self.slack.bot_token_env, self.slack.app_token_env, self.slack.signing_secret_env]
        webhook = self.telegram.webhook
        sources.append(webhook.secret_env if webhook else WEBHOOK_SECRET_ENV)
        sources += [p.pull_requests.token_env for p in self.projects.values() if p.pull_requests]
        sources += [n for n in (self.triggers.github_secret_env, self.triggers.generic_secret_env) if n]
        sources += [self.voice.key_env] if self.voice.key_env else []
        return sources

    def known_secrets(self) -> dict[str, str]:
        """Every secret the config names, by variable, read from our environment (unset ones left out)."""
        return secrets_in_environment(self.secret_sources(), self.telegram.token_env)

    def secret_values(self) -> list[str]:
        """Values of every secret the config knows of, longest first, so text can be scrubbed of them."""
        from core.redact import Redactor

        return Redactor(self.known_secrets()).values
