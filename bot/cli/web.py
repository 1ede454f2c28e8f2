"""The CLI's ``web`` command: a one-time sign-in link to the dashboard, or ``--revoke-all`` to end every session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.web.auth import CLI_USER
from core.service import LOCAL

if TYPE_CHECKING:
    import argparse

    from bot.app import App


def web(app: App, args: argparse.Namespace) -> int:
    if args.revoke_all:
        ended = app.service.revoke_web_sessions(actor=LOCAL)
        print(f"🖥 {ended} dashboard session(s) ended; unused links no longer work.")
        return 0
    link = app.service.web_link(CLI_USER, actor=LOCAL)
    minutes = app.config.web.link_s / 60
    print(f"🖥 Open within {minutes:g} min (works once): {link}")
    return 0


__all__ = ["web"]
