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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from core.agents.base import AgentSettings
from core.errors import ConfigError
from core.redact import Redactor
from core.routing import compile_rule_pattern

AGENT_KINDS = ("claude", "codex", "gemini", "qwen", "opencode", "droid", "aider", "command")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRETISH = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


_MAX_SECONDS = 30 * 24 * 3600  # the longest duration: every wait must fit select, sleep and timers


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*")
    @classmethod
    def _bounded_duration(cls, value: Any, info: ValidationInfo) -> Any:
        """Every ``*_s`` field is a duration: finite and at most 30 days (a larger one crashed runners)."""
        name = info.field_name or ""
        if name.endswith("_s") and isinstance(value, int | float) and not value <= _MAX_SECONDS:
            raise ValueError(f"must be at most {_MAX_SECONDS} (30 days)")
        return value


class AgentConfig(_Model):
    kind: Literal["claude", "codex", "gemini", "qwen", "opencode", "droid", "aider", "command"] = "command"
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    env_from: dict[str, str] = Field(default_factory=dict)
    env_pass: list[str] = Field(default_factory=list)  # more of our variables the agent may see (names only)
    model: str | None = None
    max_concurrent: int = Field(default=2, ge=1)
    enabled: bool = True
    description: str = ""

    @field_validator("command")
    @classmethod
    def _splits(cls, command: str) -> str:
        try:
            words = shlex.split(command)
        except ValueError as exc:  # an unterminated quote or a trailing backslash
            raise ValueError(f"cannot split {command!r} into words ({str(exc).lower()})") from None
        if not words:
            raise ValueError("names no program")
        return command

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

    @field_validator("env_pass")
    @classmethod
    def _pass_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} must name an environment variable")
        return names


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
            compile_rule_pattern(pattern)  # RE2, as routing matches it: linear time, whatever the pattern
        except ValueError as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
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
    events_max_bytes: int = Field(default=20_000_000, ge=0)  # events.jsonl (and the store) per task
    engine_idle_exit_s: float = Field(default=300, ge=0)


class BudgetsConfig(_Model):
    per_task_usd: float | None = Field(default=None, gt=0)
    default_estimate_usd: float = Field(default=0.5, ge=0)
    per_day_usd: float | None = Field(default=None, gt=0)
    per_month_usd: float | None = Field(default=None, gt=0)
    when_exceeded: Literal["approve", "refuse"] = "approve"
    alert_thresholds: list[int] = Field(default_factory=lambda: [50, 80, 100])
    reference_model: str | None = None  # None: the most expensive model the tasks used
    check_every_s: float = Field(default=60, gt=0)

    @field_validator("alert_thresholds")
    @classmethod
    def _percentages(cls, thresholds: list[int]) -> list[int]:
        for value in thresholds:
            if not 1 <= value <= 1000:
                raise ValueError(f"{value} is not a percentage between 1 and 1000")
        return sorted(set(thresholds))


class DigestConfig(_Model):
    enabled: bool = True
    time: str = "08:00"
    timezone: str = "UTC"  # also where days, weeks and months of costs and budgets begin
    channels: list[str] = Field(default_factory=list)  # empty: every configured channel
    grace_s: float = Field(default=6 * 3600, ge=0)
    chart: bool = True
    max_lines: int = Field(default=15, ge=1)

    @field_validator("time", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            value = f"{value // 60}:{value % 60:02d}"  # YAML 1.1 reads an unquoted 8:00 as 480
        if not isinstance(value, str):
            return value
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not a time of day like 08:00")
        return f"{int(match[1]):02d}:{match[2]}"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known time zone (an IANA name like Europe/Paris)") from None
        return value

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, channels: list[str]) -> list[str]:
        for name in channels:
            if not _NAME.match(name):
                raise ValueError(f"{name!r} is not a channel name (console, telegram, slack, ...)")
        return channels

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def hour_minute(self) -> tuple[int, int]:
        hour, minute = self.time.split(":")
        return int(hour), int(minute)


class WatchdogConfig(_Model):
    silent_after_s: float | None = Field(default=900, gt=0)  # None: no watchdog
    check_every_s: float = Field(default=60, gt=0)


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


class TelegramWebhookConfig(_Model):
    url: str  # the public HTTPS address Telegram posts updates to
    listen: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    path: str = "telegram"
    secret_env: str = "TELEGRAM_WEBHOOK_SECRET"
    check_every_s: float = Field(default=60, gt=0)  # how often getWebhookInfo is asked how delivery goes

    @field_validator("url")
    @classmethod
    def _https(cls, url: str) -> str:
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} must name an environment variable")
        return name

    def secret(self) -> str:
        """The secret token Telegram sends with every update, read from the environment."""
        value = os.environ.get(self.secret_env, "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
            raise ConfigError(
                f"telegram.webhook.secret_env: set ${self.secret_env} to 1-256 letters, digits, '_' or '-'"
            )
        return value


class TelegramConfig(_Model):
    enabled: bool = False
    token_env: str = "TELEGRAM_BOT_TOKEN"
    api_base_url: str = "https://api.telegram.org"
    allowed_user_ids: list[int] = Field(default_factory=list)  # empty: nobody gets in
    allowed_chat_ids: list[int] = Field(default_factory=list)  # groups the bot answers in
    notify_chat_ids: list[int] = Field(default_factory=list)  # completions, approvals, alerts, digests
    mode: Literal["polling", "webhook"] = "polling"
    webhook: TelegramWebhookConfig | None = Field(default=None, validate_default=True)
    poll_timeout_s: int = Field(default=30, ge=1, le=50)
    rate_limit_per_minute: int = Field(default=20, ge=1)
    progress_interval_s: float = Field(default=5, ge=0)
    progress_refresh_s: float = Field(default=60, gt=0)
    retry_base_s: float = Field(default=1, gt=0)
    retry_max_s: float = Field(default=60, gt=0)
    stall_after_s: float = Field(default=120, gt=0)
    exit_after_s: float = Field(default=600, gt=0)

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, name: str) -> str:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} must name an environment variable (the token itself never goes here)")
        return name

    @field_validator("api_base_url")
    @classmethod
    def _base_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url.rstrip("/").removesuffix("/bot")

    @field_validator("webhook")
    @classmethod
    def _webhook_for_mode(cls, webhook: TelegramWebhookConfig | None, info: ValidationInfo) -> Any:
        if info.data.get("mode") == "webhook" and webhook is None:
            raise ValueError("required when mode is webhook (url, and the secret token in secret_env)")
        return webhook

    @field_validator("stall_after_s", "exit_after_s")
    @classmethod
    def _longer_than_poll(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("poll_timeout_s")
        if timeout is not None and value <= timeout:
            raise ValueError(f"must be longer than poll_timeout_s ({timeout})")
        return value

    def token(self) -> str:
        """The bot token, read from the environment variable named by ``token_env``."""
        value = os.environ.get(self.token_env, "").strip()
        if not value:
            raise ConfigError(f"telegram.token_env: the environment variable {self.token_env} is not set")
        return value


class SlackHttpConfig(_Model):
    listen: str = "127.0.0.1"  # behind your TLS proxy; Slack must reach it over HTTPS
    port: int = Field(default=3000, ge=1, le=65535)
    path: str = "/slack/events"  # slash commands, events and interactivity all post here

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        return "/" + path.lstrip("/")


class SlackConfig(_Model):
    enabled: bool = False
    bot_token_env: str = "SLACK_BOT_TOKEN"  # xoxb-...
    app_token_env: str = "SLACK_APP_TOKEN"  # xapp-..., Socket Mode only
    signing_secret_env: str = "SLACK_SIGNING_SECRET"  # HTTP mode only
    api_base_url: str = "https://slack.com/api/"
    mode: Literal["socket", "http"] = "socket"
    http: SlackHttpConfig = Field(default_factory=SlackHttpConfig)
    command: str = "/orchestra"
    allowed_user_ids: list[str] = Field(default_factory=list)  # empty: nobody gets in
    allowed_channel_ids: list[str] = Field(default_factory=list)  # channels the bot answers in (DMs need only the user)
    notify_channel_ids: list[str] = Field(default_factory=list)  # completions, approvals, alerts, digests
    rate_limit_per_minute: int = Field(default=20, ge=1)
    progress_interval_s: float = Field(default=5, ge=0)
    progress_refresh_s: float = Field(default=60, gt=0)
    retry_base_s: float = Field(default=1, gt=0)
    retry_max_s: float = Field(default=60, gt=0)
    exit_after_s: float = Field(default=600, gt=0)  # Socket Mode down this long: exit 75 for the supervisor

    @field_validator("bot_token_env", "app_token_env", "signing_secret_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} must name an environment variable (the secret itself never goes here)")
        return name

    @field_validator("api_base_url")
    @classmethod
    def _base_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url.rstrip("/") + "/"  # slack-sdk appends the method name as is

    @field_validator("command")
    @classmethod
    def _slash(cls, command: str) -> str:
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", command):
            raise ValueError(f"{command!r} is not a slash command like /orchestra")
        return command

    def _secret(self, key: str, env: str) -> str:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"slack.{key}: the environment variable {env} is not set")
        return value

    def bot_token(self) -> str:
        return self._secret("bot_token_env", self.bot_token_env)

    def app_token(self) -> str:
        return self._secret("app_token_env", self.app_token_env)

    def signing_secret(self) -> str:
        return self._secret("signing_secret_env", self.signing_secret_env)

    def check_secrets(self) -> None:
        """Raise ConfigError (one line) when a secret this mode needs is not in the environment."""
        self.bot_token()
        if self.mode == "socket":
            self.app_token()
        else:
            self.signing_secret()


class MetricsConfig(_Model):
    """The Prometheus endpoint of ``orchestra bot``: ``GET /metrics`` only, no authentication."""

    enabled: bool = False
    listen: str = "127.0.0.1"  # anyone who can reach it reads task counts and costs: keep it local
    port: int = Field(default=9464, ge=1, le=65535)

    @field_validator("listen")
    @classmethod
    def _address(cls, listen: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", listen.strip()):
            raise ValueError(f"{listen!r} is not an address to listen on, like 127.0.0.1 or 0.0.0.0")
        return listen.strip()


Role = Literal["viewer", "operator", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}


class RolesConfig(_Model):
    """Chat users' roles, as ``platform:user_id`` (``telegram:111``, ``slack:U024BE7LH``).

    All three empty (the default) keeps the allowlist's meaning: every allowed user is an admin.
    Once any is set, an allowed user who is in none of them is a viewer.
    """

    admins: list[str] = Field(default_factory=list)
    operators: list[str] = Field(default_factory=list)
    viewers: list[str] = Field(default_factory=list)

    @field_validator("admins", "operators", "viewers")
    @classmethod
    def _qualified(cls, ids: list[str]) -> list[str]:
        for user in ids:
            if not re.fullmatch(r"(telegram|slack):\S+", str(user)):
                raise ValueError(f"{user!r}: write users as telegram:USER_ID or slack:USER_ID")
        return [str(user) for user in ids]

    def role_of(self, platform: str, user_id: str) -> Role:
        key = f"{platform}:{user_id}"
        if not (self.admins or self.operators or self.viewers) or key in self.admins:
            return "admin"
        return "operator" if key in self.operators else "viewer"


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
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    digest: DigestConfig = Field(default_factory=DigestConfig)
    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig)
    roles: RolesConfig = Field(default_factory=RolesConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

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
            config_dir=str(self.home() / "agents" / name),
        )

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

    def known_secrets(self) -> dict[str, str]:
        """Every secret the config names, by variable: all agents' ``env_from``, chat tokens, signing
        and webhook secrets, each read from our environment (unset ones are left out)."""
        sources = [source for agent in self.agents.values() for source in agent.env_from.values()]
        sources.append(self.telegram.token_env)
        sources += [self.slack.bot_token_env, self.slack.app_token_env, self.slack.signing_secret_env]
        webhook = self.telegram.webhook
        sources.append(webhook.secret_env if webhook else TelegramWebhookConfig.model_fields["secret_env"].default)
        found = {source: os.environ[source] for source in sources if os.environ.get(source, "").strip()}
        token = found.get(self.telegram.token_env, "")
        if ":" in token:  # a Bot API token is <bot id>:<secret>; the secret part alone is one too
            found[self.telegram.token_env + ":secret"] = token.split(":", 1)[1]
        return found

    def secret_values(self) -> list[str]:
        """Values of every secret the config knows of, longest first, so text can be scrubbed of them."""
        return Redactor(self.known_secrets()).values


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


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice is an error instead of the last one silently winning."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice (line {line})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


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
                data = yaml.load(candidate.read_text(encoding="utf-8"), Loader=_StrictLoader)
            except UnicodeDecodeError as exc:
                raise ConfigError(
                    f"{candidate}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
                ) from None
            except RecursionError:
                raise ConfigError(f"{candidate}: cannot read YAML (nested too deeply)") from None
            except (OSError, yaml.YAMLError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"{candidate}: cannot read YAML ({first})") from None
            try:
                return parse_config(data, source=str(candidate)), candidate
            except RecursionError:
                raise ConfigError(f"{candidate}: nested too deeply to validate") from None
    raise ConfigError(f"no bots.yaml found (looked at {', '.join(str(c) for c in candidates)})")
