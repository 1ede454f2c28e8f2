"""Who a browser is: Telegram Mini App ``initData`` checked as Telegram documents it, one-time links, sessions.

Nothing here trusts the browser: a session is a random cookie whose SHA-256 digest is in the store
(with its CSRF token), a link is spent on first use, and ``initData`` is signed by the bot token.
The role of whoever signs in is the one a chat would give the same user (``roles`` in bots.yaml),
looked up again on every request, so a change to bots.yaml applies at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from core.service.web import token_digest as digest
from core.store.web import WebSession

if TYPE_CHECKING:
    from core.config import Config
    from core.store import Store

CLI_USER = "cli:local"  # `orchestra web`: the terminal is its owner's, an admin (as the CLI is)


class Refused(Exception):
    """A sign-in that fails; its text is for the log only (the browser gets a bare 401/403)."""


@dataclass(frozen=True)
class MiniAppUser:
    user_id: str
    name: str
    auth_date: float


def check_init_data(init_data: str, bot_token: str, now: float, max_age_s: float) -> MiniAppUser:
    """The Telegram user a Mini App's ``initData`` names, if the bot's token signed it and it is fresh.

    As Telegram documents it: ``secret_key = HMAC_SHA256(key="WebAppData", msg=bot_token)``, and
    ``hash`` is the hex ``HMAC_SHA256(key=secret_key, msg=data_check_string)``, the other fields as
    ``key=value`` lines sorted by key. ``Refused`` (saying why) otherwise.
    """
    try:
        fields = dict(parse_qsl(init_data, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise Refused("initData is not a query string") from None
    received = fields.pop("hash", "")
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    secret_key = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    expected = hmac.new(secret_key, check.encode(), hashlib.sha256).hexdigest()
    if not received or not hmac.compare_digest(expected, received):
        raise Refused("initData hash does not match the bot token")
    try:
        auth_date = float(fields["auth_date"])
        user = json.loads(fields["user"])
        user_id = str(int(user["id"]))
    except (KeyError, ValueError, TypeError):
        raise Refused("initData lacks auth_date or user") from None
    if not now - max_age_s <= auth_date <= now + 60:
        raise Refused(f"initData is {now - auth_date:.0f} s old (at most {max_age_s:.0f} s)")
    name = str(user.get("username") or user.get("first_name") or user_id)
    return MiniAppUser(user_id, name, auth_date)


def role_of(config: Config, user: str) -> str | None:
    """The role ``user`` (``telegram:111``, ``slack:U1``, ``cli:local``) has, or None when not allowed at all."""
    platform, _, user_id = user.partition(":")
    if user == CLI_USER:
        return "admin"
    allowed: list[str] = []
    if platform == "telegram" and config.telegram.enabled:
        allowed = [str(u) for u in config.telegram.allowed_user_ids]
    elif platform == "slack" and config.slack.enabled:
        allowed = [str(u) for u in config.slack.allowed_user_ids]
    if user_id not in allowed:
        return None
    return config.roles.role_of(platform, user_id)


def new_session(store: Store, user: str, name: str, via: str, now: float, ttl_s: float) -> tuple[str, WebSession]:
    """A session cookie's value and what it stands for (with a fresh CSRF token)."""
    token = secrets.token_urlsafe(32)
    session = WebSession(user, name, secrets.token_urlsafe(24), via, now + ttl_s)
    store.add_web_session(digest(token), session, now)
    return token, session


__all__ = ["CLI_USER", "MiniAppUser", "Refused", "check_init_data", "digest", "new_session", "role_of"]
