"""bots.yaml ``slack``: the Slack bridge of ``orchestra bot`` (Socket Mode or HTTP)."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, field_validator

from core.config.fields import EnvVarName, Seconds, StrictModel, Url
from core.errors import ConfigError


class SlackHttpConfig(StrictModel):
    """HTTP mode: where Slack posts slash commands, events and taps (behind your TLS proxy)."""

    listen: str = Field(default="127.0.0.1", description="Where the local server listens; Slack reaches it over HTTPS.")
    port: int = Field(default=3000, ge=1, le=65535, description="The local server's port.")
    path: str = Field(
        default="/slack/events", description="The one path slash commands, events and interactivity post to."
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        return "/" + path.lstrip("/")


class SlackConfig(StrictModel):
    """The Slack bridge, in the same ``orchestra bot`` process; off until ``enabled: true``."""

    enabled: bool = Field(default=False, description="Run the Slack bridge in `orchestra bot`.")
    bot_token_env: EnvVarName = Field(
        default="SLACK_BOT_TOKEN", description="The variable holding the bot token (xoxb-...)."
    )
    app_token_env: EnvVarName = Field(
        default="SLACK_APP_TOKEN",
        description="The variable holding the app-level token (xapp-..., connections:write), Socket Mode only.",
    )
    signing_secret_env: EnvVarName = Field(
        default="SLACK_SIGNING_SECRET", description="The variable holding the signing secret, HTTP mode only."
    )
    api_base_url: Url = Field(default="https://slack.com/api/", description="Slack's Web API, or a stand-in.")
    mode: Literal["socket", "http"] = Field(
        default="socket", description="socket (no public URL needed) or http (needs `http`)."
    )
    http: SlackHttpConfig = Field(default_factory=SlackHttpConfig, description="Where Slack posts in HTTP mode.")
    command: str = Field(default="/orchestra", description="The slash command you created in the Slack app.")
    allowed_user_ids: list[str] = Field(
        default_factory=list,
        description="Slack user ids (U...) allowed in; empty: nobody (strangers get an ephemeral refusal).",
    )
    allowed_channel_ids: list[str] = Field(
        default_factory=list, description="Channels (C...) the bot answers in (a DM needs only the user)."
    )
    notify_channel_ids: list[str] = Field(
        default_factory=list,
        description="Channels that get completions, approval requests, alerts and the digest.",
    )
    rate_limit_per_minute: int = Field(default=20, ge=1, description="Commands and taps per user per minute.")
    progress_interval_s: Seconds = Field(
        default=5, ge=0, description="An acknowledgement is edited at most this often."
    )
    progress_refresh_s: Seconds = Field(
        default=60, gt=0, description="An acknowledgement is edited at least this often while its task runs quietly."
    )
    retry_base_s: Seconds = Field(
        default=1, gt=0, description="The first back-off after a 5xx or network error; doubles up to retry_max_s."
    )
    retry_max_s: Seconds = Field(default=60, gt=0, description="The longest back-off.")
    exit_after_s: Seconds = Field(
        default=600, gt=0, description="Socket Mode down this long: exit 75 so the supervisor restarts the bot."
    )

    @field_validator("api_base_url")
    @classmethod
    def _base_url(cls, url: str) -> str:
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
        """The bot token (xoxb-...), read from the environment; ConfigError when it is not set."""
        return self._secret("bot_token_env", self.bot_token_env)

    def app_token(self) -> str:
        """The app-level token (xapp-...), read from the environment; ConfigError when it is not set."""
        return self._secret("app_token_env", self.app_token_env)

    def signing_secret(self) -> str:
        """The signing secret, read from the environment; ConfigError when it is not set."""
        return self._secret("signing_secret_env", self.signing_secret_env)

    def check_secrets(self) -> None:
        """Raise ConfigError (one line) when a secret this mode needs is not in the environment."""
        self.bot_token()
        if self.mode == "socket":
            self.app_token()
        else:
            self.signing_secret()
