"""The web dashboard's one-time links, for ``orchestra web`` and ``/web``: issued, audited, revoked here."""

from __future__ import annotations

import hashlib
import secrets

from core.errors import InvalidInput
from core.service.base import Actor, ServiceBase


def token_digest(token: str) -> str:
    """What the store keeps of a link's or a session's token: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


class WebLinks(ServiceBase):
    """Sign-in links to the dashboard (``bot/web``); the links carry the token after ``#``, which no
    server, proxy log or link preview ever receives: the page posts it once, and it is spent."""

    def web_link(self, user: str, *, actor: Actor) -> str:
        """A single-use sign-in link for ``user`` (``telegram:111``, ``cli:local``), valid ``web.link_s``."""
        web = self.config.web
        if not web.enabled:
            raise InvalidInput("the web dashboard is off: set web.enabled: true in bots.yaml and restart the bot")
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        self.store.add_web_link(token_digest(token), user, actor.name, now, now + web.link_s)
        self.audit(actor, "web", None, f"one-time link for {user}, valid {web.link_s:.0f} s")
        return f"{web.base_url()}/login#{token}"

    def revoke_web_sessions(self, *, actor: Actor) -> int:
        """End every dashboard session and unused link now; how many sessions ended."""
        ended = self.store.revoke_web_sessions()
        self.audit(actor, "web", None, f"revoked all: {ended} session(s)")
        return ended


__all__ = ["WebLinks", "token_digest"]
