"""bots.yaml: typed, validated once at start-up.

Every validation error names its key path (``agents.codex.max_concurrent: must be ≥ 1``).
Secrets never live in the file: an agent's ``env_from`` maps a variable the agent needs to the
name of an environment variable of ours that holds the value.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.agents.base import AgentSettings
from core.errors import ConfigError

AGENT_KINDS = ("claude", "command")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRETISH = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentConfig(_Model):
    kind: Literal["claude", "command"] = "command"
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    env_from: dict[str, str] = Field(default_factory=dict)
    model: str | None = None
    max_concurrent: int = Field(default=2, ge=1)
    enabled: bool = True
    description: str = ""

    @field_validator("env")
    @classmethod
    def _no_secret_values(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            if _SECRETISH.search(key):
                raise ValueError(f"{key} looks like a secret: name the variable that holds it under env_from instead")
        return env

    @field_validator("env_from")
    @classmethod
    def _env_names(cls, env_from: dict[str, str]) -> dict[str, str]:
        for key, source in env_from.items():
            if not _ENV_NAME.match(key) or not _ENV_NAME.match(source):
                raise ValueError(f"{key}: {source!r} must name an environment variable")
        return env_from


class RuleConfig(_Model):
    name: str
    pattern: str
    category: str
    agent: str | None = None
    require_approval: bool = False
    require_review: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from exc
        return pattern


class RoutingConfig(_Model):
    default_agent: str
    default_category: str = "backend"
    use_default_rules: bool = True
    categories: dict[str, str] = Field(default_factory=dict)
    rules: list[RuleConfig] = Field(default_factory=list)


class PolicyConfig(_Model):
    approval_for: list[str] = Field(default_factory=list)
    review_for: list[str] = Field(default_factory=list)
    approve_above_usd: float | None = Field(default=None, ge=0)


class LimitsConfig(_Model):
    max_concurrent: int = Field(default=4, ge=1)
    task_timeout_s: float = Field(default=3600, gt=0)
    cancel_grace_s: float = Field(default=5, ge=0)
    max_task_chars: int = Field(default=200_000, ge=1)
    log_max_bytes: int = Field(default=50_000_000, ge=0)
    engine_idle_exit_s: float = Field(default=300, ge=0)


class BudgetsConfig(_Model):
    per_task_usd: float | None = Field(default=None, gt=0)
    default_estimate_usd: float = Field(default=0.5, ge=0)


class TmuxConfig(_Model):
    socket_name: str = "orchestra"
    session: str = "orchestra"
    config_file: str | None = None  # tmux config for Orchestra's server; None = tmux's default lookup

    @field_validator("socket_name", "session")
    @classmethod
    def _plain(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_-]{1,64}$", value):
            raise ValueError("use letters, digits, '-' or '_' only")
        return value


class NotifyConfig(_Model):
    console: bool = True


class Config(_Model):
    version: Literal[1] = 1
    data_dir: str | None = None
    workspace: str | None = None
    tmux: TmuxConfig = Field(default_factory=TmuxConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    agents: dict[str, AgentConfig]
    routing: RoutingConfig
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

    @model_validator(mode="after")
    def _cross_refs(self) -> Config:
        for name in self.agents:
            if not _NAME.match(name):
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
        return self

    def home(self) -> Path:
        """The data directory: $ORCHESTRA_HOME, else ``data_dir``, else the user's data dir."""
        env = os.environ.get("ORCHESTRA_HOME")
        if env:
            return Path(env).expanduser()
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        from platformdirs import user_data_dir

        return Path(user_data_dir("orchestra"))

    def agent_settings(self, name: str) -> AgentSettings:
        """An agent's settings with its literal (non-secret) environment."""
        agent = self.agents[name]
        command, *prefix = command_argv(agent.command)
        return AgentSettings(
            name=name,
            kind=agent.kind,
            command=command,
            prefix_args=prefix,
            args=list(agent.args),
            env=dict(agent.env),
            model=agent.model,
        )

    def secret_env(self, name: str) -> dict[str, str]:
        """The agent's ``env_from`` variables resolved from our environment.

        These are handed to the agent's tmux window in memory and never written to disk.
        """
        env = {}
        for key, source in self.agents[name].env_from.items():
            value = os.environ.get(source)
            if value is not None:
                env[key] = value
        return env

    def secret_values(self) -> list[str]:
        """Values of every env_from variable, so logs and stored text can be scrubbed of them."""
        values = []
        for agent in self.agents.values():
            for source in agent.env_from.values():
                value = os.environ.get(source)
                if value and len(value) >= 6:
                    values.append(value)
        return values


def expand_command(command: str) -> str:
    """``{python}`` is the interpreter running Orchestra, ``{orchestra}`` the folder of its package."""
    root = str(Path(__file__).resolve().parent.parent)
    return command.replace("{python}", sys.executable).replace("{orchestra}", root)


def command_argv(command: str) -> list[str]:
    """Split an agent's ``command`` into argv words (shell-style quoting, never run by a shell)."""
    return [expand_command(word) for word in shlex.split(command)] or [""]


def agent_installed(command: str) -> bool:
    """True when the agent's executable can be found (absolute path or on PATH)."""
    first = command_argv(command)[0]
    return bool(first) and shutil.which(first) is not None


_FRIENDLY = {
    "greater_than_equal": "must be ≥ {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be ≤ {le}",
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "literal_error": "must be one of {expected}",
    "int_parsing": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
}


def _explain(error: Any) -> str:
    path = ".".join(str(p) for p in error["loc"])
    template = _FRIENDLY.get(error["type"])
    if template is not None:
        try:
            message = template.format(**error.get("ctx", {}))
        except (KeyError, IndexError):
            message = error["msg"]
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {message}" if path else message


def parse_config(data: Any, *, source: str = "bots.yaml") -> Config:
    """Validate already-loaded YAML data; raise ConfigError naming every bad key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_explain(err) for err in exc.errors()]
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None


def load_config(path: Path | None = None) -> tuple[Config, Path]:
    """Find, read and validate bots.yaml.

    Looked up in order: the given path, $ORCHESTRA_CONFIG, ./bots.yaml, $ORCHESTRA_HOME/bots.yaml,
    then the copy shipped inside the package.
    """
    candidates: list[Path] = []
    if path is not None:
        candidates = [path]
    else:
        if os.environ.get("ORCHESTRA_CONFIG"):
            candidates.append(Path(os.environ["ORCHESTRA_CONFIG"]))
        else:
            candidates.append(Path.cwd() / "bots.yaml")
            if os.environ.get("ORCHESTRA_HOME"):
                candidates.append(Path(os.environ["ORCHESTRA_HOME"]) / "bots.yaml")
            candidates.append(Path(__file__).with_name("default_bots.yaml"))
    for candidate in candidates:
        if candidate.is_file():
            try:
                data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"{candidate}: cannot read YAML ({first})") from None
            return parse_config(data, source=str(candidate)), candidate
    raise ConfigError(f"no bots.yaml found (looked at {', '.join(str(c) for c in candidates)})")
