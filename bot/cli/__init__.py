"""``orchestra``: the terminal surface. Human output by default, ``--json`` for scripts.

Every error a user can meet is one line on stderr and a non-zero exit, never a traceback. Each
command imports only what it needs, inside its function: ``orchestra status`` must answer at once,
so nothing here loads the engine, tmux or a chat SDK before a command asks for it.

``main`` is the error boundary and the dispatcher; the parser lives in ``bot.cli.parser`` and the
commands, by noun, in ``bot.cli.tasks``, ``bot.cli.permissions``, ``bot.cli.costs`` and ``bot.cli.admin``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.parser import build_parser
from core.errors import OrchestraError
from core.launch import take_engine_env

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The error boundary: every error a user can meet ends here as one line on stderr and exit 1."""
    # An on-demand engine's keys, handed over by the process that started it (before the config reads them).
    if (warning := take_engine_env()) is not None:
        print(f"orchestra: {warning}", file=sys.stderr)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            code = 0
        else:
            code = _dispatch(args)
        sys.stdout.flush()  # a reader that went away (`| head`) shows up here, inside the boundary
        return code
    except BrokenPipeError:
        # Nobody reads any more: stop quietly, and keep the interpreter's last flush from complaining.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        line = _error_line(exc)
        if line is None:
            raise  # not an error a user can meet: a bug, and its traceback is what a report needs
        print(f"orchestra: {line}", file=sys.stderr)
        return 1


_OS_ERRORS = {
    errno.ENOSPC: "the disk is full (no space left on the device)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def _error_line(exc: BaseException) -> str | None:
    """The one line for an error a user can meet, or ``None`` for anything else."""
    if isinstance(exc, OrchestraError):
        return " ".join(str(exc).split("\n"))
    if isinstance(exc, sqlite3.Error):
        from core.store import store_error

        return str(store_error(exc, Path("orchestra.db")))
    if isinstance(exc, OSError) and exc.errno is not None:
        what = _OS_ERRORS.get(exc.errno, exc.strerror or type(exc).__name__)
        where = f": {exc.filename}" if exc.filename else ""
        return f"{what}{where}"
    return None


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command the parser chose (``args.func``), on an opened app unless it needs none."""
    if vars(args).get("without_app"):  # `config check` and `health`: the config alone
        code: int = args.func(args)
        return code
    from bot.app import open_app
    from core.store import store_error

    app = open_app(args.config)
    try:
        code = args.func(app, args)
        return code
    except sqlite3.Error as exc:
        raise store_error(exc, app.store.path) from None
    finally:
        app.close()
