"""The later migrations (015 on), in a module of their own so the schema's history stays readable;
:data:`core.store.migrations.MIGRATIONS` lists them all in order. A new migration goes at the end here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def _m015_plans(db: sqlite_utils.Database) -> None:
    """Plans (``p3``): one request as steps, each a task linked to it (``plan_id``, ``plan_step``), a
    step ``waiting`` until the steps it waits for (``step_after``, a JSON list) are done."""
    db.execute(
        "CREATE TABLE plans (num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL,"
        " state TEXT NOT NULL, origin TEXT NOT NULL, requester TEXT, source TEXT, source_ref TEXT,"
        " project TEXT, cwd TEXT, created_at REAL NOT NULL, finished_at REAL, estimate_usd REAL,"
        " estimate_s REAL, estimate_note TEXT, paused TEXT, skipped TEXT NOT NULL DEFAULT '[]',"
        " actual_usd REAL, actual_s REAL, repo TEXT, branch TEXT, base TEXT, landed TEXT, landed_by TEXT,"
        " landed_at REAL, pr_url TEXT)"
    )
    for name, kind in (("plan_id", str), ("plan_step", int), ("step_title", str), ("step_after", str)):
        db.table("tasks").add_column(name, kind)
    db.execute("CREATE INDEX tasks_plan ON tasks (plan_id, plan_step)")


WEB_MIGRATION = "016_web_sessions"  # its number alone: another migration taking its number renames only this


def _m_web_sessions(db: sqlite_utils.Database) -> None:
    """The web dashboard's one-time links and signed-in sessions (``bot/web``): only SHA-256 digests of
    their random tokens are kept, so a copy of the store signs nobody in. ``user`` is ``platform:id``."""
    db.execute(
        "CREATE TABLE web_links (digest TEXT PRIMARY KEY, user TEXT NOT NULL, name TEXT NOT NULL,"
        " created_at REAL NOT NULL, expires_at REAL NOT NULL, used_at REAL)"
    )
    db.execute(
        "CREATE TABLE web_sessions (digest TEXT PRIMARY KEY, user TEXT NOT NULL, name TEXT NOT NULL,"
        " csrf TEXT NOT NULL, via TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL)"
    )


def _m017_schedules(db: sqlite_utils.Database) -> None:
    """Schedules made from a chat or the CLI (``/every weekday 07:00 …``, ``/at 07:00 …``: ``once``),
    next to those of bots.yaml; named ``s1``, ``s2``, …"""
    db.execute(
        "CREATE TABLE schedules (num INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, cron TEXT NOT NULL,"
        " task TEXT NOT NULL, once INTEGER NOT NULL DEFAULT 0, created_by TEXT NOT NULL, created_at REAL NOT NULL)"
    )


def _m018_says(db: sqlite_utils.Database) -> None:
    """What people said to a task while it ran (``/say``, a reply, ``orchestra say``): delivered to the
    running agent (``live``) or kept for a follow-up in the same session when the run ends (``queued``).
    ``ref`` is the chat update's, so a redelivered update says it once."""
    db.execute(
        "CREATE TABLE says (id INTEGER PRIMARY KEY, task_id TEXT NOT NULL, text TEXT NOT NULL, said_by TEXT NOT NULL,"
        " via TEXT NOT NULL, said_at REAL NOT NULL, how TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'waiting',"
        " follow_id TEXT, ref TEXT UNIQUE)"
    )
    db.execute("CREATE INDEX says_waiting ON says (state, task_id)")


def _m019_files(db: sqlite_utils.Database) -> None:
    """Voice notes waiting to become tasks (``core.voice``): the transcript shown with Run / Edit, who
    sent it and where, and what became of it (``pending``, ``editing``: the sender's next message is
    the task, ``run``: ``task_id`` made from it, ``dropped``). ``ref`` is the chat update's, so a
    redelivered voice note is transcribed into one row; ``about_task`` is the task whose card it replied
    to (Run then says it to that task, as a typed reply would)."""
    db.execute(
        "CREATE TABLE transcripts (id INTEGER PRIMARY KEY, platform TEXT NOT NULL, chat_id TEXT NOT NULL,"
        " user_id TEXT NOT NULL, user_name TEXT NOT NULL, text TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',"
        " created_at REAL NOT NULL, decided_at REAL, decided_by TEXT, task_id TEXT, ref TEXT UNIQUE,"
        " message_id TEXT, topic TEXT NOT NULL DEFAULT '', about_task TEXT)"
    )
    db.execute("CREATE INDEX transcripts_editing ON transcripts (platform, chat_id, user_id, state)")


def _m020_hosts(db: sqlite_utils.Database) -> None:
    """Which host a task runs on (``hosts:`` in bots.yaml): null or ``local`` is this machine; how far the
    engine has mirrored the remote ``events.jsonl`` is the local copy's size, so nothing more is kept."""
    db.table("tasks").add_column("host", str)
