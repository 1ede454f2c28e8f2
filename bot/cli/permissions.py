"""The CLI's permission and talk commands: pending (what agents wait on), allow and deny (answer one
request), answer (an agent's question), say (to a running task) and stop (its current step).

``allow`` and ``deny`` take a request (``p12``) or a task (``t7``: its oldest open request). An
answer given elsewhere first, a task with nothing waiting, or an unknown id is one line on stderr
and exit 1 (``bot.cli.main``'s boundary).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cli.output import as_json

if TYPE_CHECKING:
    import argparse

    from bot.app import App


def pending(app: App, args: argparse.Namespace) -> int:
    from core.permission_text import pending_line
    from core.store.permissions import permission_row

    waiting = app.service.pending_permissions(args.task)
    if args.json:
        now = app.clock.now()
        rows = [{**permission_row(r), "waiting_s": now - r.created_at, "left_s": r.deadline - now} for r in waiting]
        print(as_json(rows, ensure_ascii=False))
        return 0
    if not waiting:
        print("no agent is waiting for permission")
        return 0
    now = app.clock.now()
    for request in waiting:
        print(pending_line(request, now))
    print("answer: orchestra allow ID [--task] · orchestra deny ID [--reason TEXT]  (ID: p12, or t7 for its oldest)")
    return 0


def allow(app: App, args: argparse.Namespace) -> int:
    print(app.service.answer_permission(args.id, "task" if args.task else "allow", actor=_local()))
    return 0


def deny(app: App, args: argparse.Namespace) -> int:
    print(app.service.answer_permission(args.id, "deny", actor=_local(), reason=args.reason))
    return 0


def answer(app: App, args: argparse.Namespace) -> int:
    print(app.service.answer_question(args.id, args.text, actor=_local()))
    return 0


def say(app: App, args: argparse.Namespace) -> int:
    from core.service.base import Actor

    print(app.service.say(args.id, args.text, actor=Actor(_local(), "cli")))
    return 0


def stop(app: App, args: argparse.Namespace) -> int:
    from core.service.base import Actor

    print(app.service.stop(args.id, actor=Actor(_local(), "cli")))
    return 0


def _local() -> str:
    """Who answers from this terminal: the login name (the audit says ``cli``)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"
