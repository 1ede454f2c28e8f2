"""The rest of bots.yaml: tmux, the digest, the watchdog, console notices, chat roles and metrics."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from core.config.fields import Seconds, StrictModel, is_name

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


class TmuxConfig(StrictModel):
    """Orchestra's own tmux server (``tmux -L socket_name``), never your default one."""

    socket_name: str = Field(default="orchestra", description="The server's socket: `tmux -L orchestra`.")
    session: str = Field(default="orchestra", description="The session holding one window per task, named by its id.")
    config_file: str | None = Field(
        default=None, description="The tmux config for Orchestra's server; null: tmux's default lookup."
    )

    @field_validator("socket_name", "session")
    @classmethod
    def _plain(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise ValueError("use letters, digits, '-' or '_' only")
        return value


class DigestConfig(StrictModel):
    """The morning digest, sent by ``orchestra bot``; ``orchestra digest`` shows it any time."""

    enabled: bool = Field(default=True, description="Send the digest every day at `time`.")
    time: str = Field(default="08:00", description="The local time of day, in `timezone`, as HH:MM.")
    timezone: str = Field(
        default="UTC",
        description="An IANA name; also where days, weeks (Monday) and months of costs and budgets begin.",
    )
    channels: list[str] = Field(
        default_factory=list, description="Where to send it, e.g. [telegram]; empty: every configured channel."
    )
    grace_s: Seconds = Field(
        default=6 * 3600,
        ge=0,
        description="A digest missed while the bot was down is sent at start if at most this late.",
    )
    chart: bool = Field(default=True, description="Attach a PNG of daily cost by agent over the last 14 days.")
    max_lines: int = Field(default=15, ge=1, description="Task lines per section; the rest is counted.")

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
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only when a config is validated

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known time zone (an IANA name like Europe/Paris)") from None
        return value

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, channels: list[str]) -> list[str]:
        for name in channels:
            if not is_name(name):
                raise ValueError(f"{name!r} is not a channel name (console, telegram, slack, ...)")
        return channels

    def zone(self) -> ZoneInfo:
        """The digest's time zone, where costs' days, weeks and months begin too."""
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    def hour_minute(self) -> tuple[int, int]:
        """``time`` as (hour, minute)."""
        hour, minute = self.time.split(":")
        return int(hour), int(minute)


class WatchdogConfig(StrictModel):
    """One alert, with Peek / Cancel buttons in chat, when a running task has said nothing for long."""

    silent_after_s: Seconds | None = Field(
        default=900, gt=0, description="How long a running task may say nothing; null turns the watchdog off."
    )
    check_every_s: Seconds = Field(default=60, gt=0, description="How often running tasks are checked.")


class NotifyConfig(StrictModel):
    """Where notifications go besides the chats."""

    console: bool = Field(default=True, description="Print notifications as they would reach a chat.")


Role = Literal["viewer", "operator", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}


class RolesConfig(StrictModel):
    """Chat users' roles, as ``platform:user_id`` (``telegram:111``, ``slack:U024BE7LH``).

    All three empty (the default) keeps the allowlist's meaning: every allowed user is an admin.
    Once any is set, an allowed user who is in none of them is a viewer.
    """

    admins: list[str] = Field(
        default_factory=list, description="Who may do everything, /kill and changing budgets included."
    )
    operators: list[str] = Field(
        default_factory=list,
        description="Who may delegate, cancel, retry, approve, reject, answer permission requests and read /audit.",
    )
    viewers: list[str] = Field(
        default_factory=list,
        description="Who may only look: /status, /peek, /screen, /log, /cost, /budget, /digest, /agents, /pending.",
    )

    @field_validator("admins", "operators", "viewers")
    @classmethod
    def _qualified(cls, ids: list[str]) -> list[str]:
        for user in ids:
            if not re.fullmatch(r"(telegram|slack):\S+", str(user)):
                raise ValueError(f"{user!r}: write users as telegram:USER_ID or slack:USER_ID")
        return [str(user) for user in ids]

    def role_of(self, platform: str, user_id: str) -> Role:
        """The role of an allowed user (the allowlists decide who is allowed at all)."""
        key = f"{platform}:{user_id}"
        if not (self.admins or self.operators or self.viewers) or key in self.admins:
            return "admin"
        return "operator" if key in self.operators else "viewer"


class MetricsConfig(StrictModel):
    """The Prometheus endpoint of ``orchestra bot``: ``GET /metrics`` only, no authentication."""

    enabled: bool = Field(default=False, description="Serve http://LISTEN:PORT/metrics from `orchestra bot`.")
    listen: str = Field(
        default="127.0.0.1",
        description="Keep it local: whoever reaches the port reads task counts and costs.",
    )
    port: int = Field(
        default=9464,
        ge=1,
        le=65535,
        description="The port to serve on; if it is taken, the bot runs without metrics and says so.",
    )

    @field_validator("listen")
    @classmethod
    def _address(cls, listen: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", listen.strip()):
            raise ValueError(f"{listen!r} is not an address to listen on, like 127.0.0.1 or 0.0.0.0")
        return listen.strip()
