"""The web dashboard's part of bots.yaml: where ``orchestra bot`` serves it and how long its links and sessions live."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from core.config.fields import Seconds, StrictModel


class WebConfig(StrictModel):
    """The live dashboard (and Telegram Mini App) served by ``orchestra bot``; off by default, local by default."""

    enabled: bool = Field(default=False, description="Serve the dashboard from `orchestra bot` on LISTEN:PORT.")
    listen: str = Field(
        default="127.0.0.1", description="Keep it local; put a TLS proxy or a tunnel in front to reach it from a phone."
    )
    port: int = Field(default=8765, ge=1, le=65535, description="The port; if it is taken, the bot runs without it.")
    public_url: str | None = Field(
        default=None,
        description="The address people open (https://… behind a proxy); null: http://LISTEN:PORT. "
        "Links use it, the Origin check expects it, and https makes the session cookie Secure.",
    )
    session_s: Seconds = Field(default=12 * 3600, gt=0, description="How long a signed-in browser stays signed in.")
    link_s: Seconds = Field(
        default=300, gt=0, description="How long a one-time link from `/web` or `orchestra web` works."
    )
    init_data_s: Seconds = Field(
        default=3600, gt=0, description="The oldest Telegram Mini App initData accepted (its auth_date)."
    )

    @field_validator("listen")
    @classmethod
    def _address(cls, listen: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", listen.strip()):
            raise ValueError(f"{listen!r} is not an address to listen on, like 127.0.0.1 or 0.0.0.0")
        return listen.strip()

    @field_validator("public_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url.strip()):
            raise ValueError(f"{url!r} is not an http(s) address like https://orchestra.example.com")
        return url.strip().rstrip("/")

    def base_url(self) -> str:
        """Where a browser reaches the dashboard: ``public_url``, else the listening address."""
        if self.public_url:
            return self.public_url
        host = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"http://{host}:{self.port}"

    def origin(self) -> str:
        """The Origin a browser sends from the dashboard's own pages (scheme://host[:port])."""
        match = re.match(r"https?://[^/]+", self.base_url())
        assert match is not None
        return match.group(0)


__all__ = ["WebConfig"]
