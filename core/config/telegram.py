"""bots.yaml ``telegram``: the Telegram bridge of ``orchestra bot`` (polling or webhook)."""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from core.config.fields import EnvVarName, Seconds, StrictModel, Url
from core.errors import ConfigError

WEBHOOK_SECRET_ENV = "TELEGRAM_WEBHOOK_SECRET"


class TelegramWebhookConfig(StrictModel):
    """Webhook mode: Telegram posts updates to a public HTTPS address that your TLS proxy forwards here."""

    url: Url = Field(description="The public HTTPS address Telegram posts updates to.")
    listen: str = Field(default="127.0.0.1", description="Where the local webhook server listens.")
    port: int = Field(default=8443, ge=1, le=65535, description="The local webhook server's port.")
    path: str = Field(default="telegram", description="The URL path updates arrive on.")
    secret_env: EnvVarName = Field(
        default=WEBHOOK_SECRET_ENV,
        description="The variable holding the secret token Telegram sends with every update.",
    )
    check_every_s: Seconds = Field(
        default=60, gt=0, description="How often getWebhookInfo is asked whether Telegram can deliver to us."
    )

    def secret(self) -> str:
        """The secret token Telegram sends with every update, read from the environment."""
        value = os.environ.get(self.secret_env, "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
            raise ConfigError(
                f"telegram.webhook.secret_env: set ${self.secret_env} to 1-256 letters, digits, '_' or '-'"
            )
        return value


class TelegramConfig(StrictModel):
    """The Telegram bridge, run by ``orchestra bot``; off until ``enabled: true``."""

    enabled: bool = Field(default=False, description="Run the Telegram bridge in `orchestra bot`.")
    token_env: EnvVarName = Field(
        default="TELEGRAM_BOT_TOKEN", description="The variable holding the bot token from @BotFather."
    )
    api_base_url: Url = Field(default="https://api.telegram.org", description="Telegram's Bot API, or your own.")
    allowed_user_ids: list[int] = Field(
        default_factory=list,
        description="Numeric user ids allowed in; empty: nobody (strangers are told their id).",
    )
    allowed_chat_ids: list[int] = Field(
        default_factory=list, description="Group chats the bot answers in (a private chat needs only the user)."
    )
    notify_chat_ids: list[int] = Field(
        default_factory=list,
        description="Chats that get completions, approval requests, alerts and the digest.",
    )
    mode: Literal["polling", "webhook"] = Field(
        default="polling", description="polling (long poll) or webhook (needs `webhook`)."
    )
    webhook: TelegramWebhookConfig | None = Field(
        default=None, validate_default=True, description="Where updates arrive in webhook mode."
    )
    poll_timeout_s: int = Field(default=30, ge=1, le=50, description="The long-poll timeout of each getUpdates.")
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
    stall_after_s: Seconds = Field(default=120, gt=0, description="A getUpdates unanswered this long is restarted.")
    exit_after_s: Seconds = Field(
        default=600,
        gt=0,
        description="No successful getUpdates for this long (409s, an outage): exit 75 to be restarted.",
    )

    @field_validator("api_base_url")
    @classmethod
    def _base_url(cls, url: str) -> str:
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
