"""Receiving what people send: the files of a message checked, fetched and staged before the commands see it.

A transport turns a photo, document, voice note or audio clip into :class:`~core.messages.FileRef`
and, once the :class:`core.access.Gate` let the message through, awaits :func:`receive` with its
own ``fetch`` (the platform's download, streamed: Telegram's getFile and file URL, Slack's private
URL with the bot token). Everything else is decided here, the same for every platform:

- only someone who may delegate gets anything downloaded (the commands refuse the others as usual);
- a voice note alone, with no text, is for transcription: without ``voice.url`` it is one line
  saying how to set it up, and nothing is fetched;
- too many files, or a file larger than the limit (``files.max_mb``, ``voice.max_mb``, and the
  platform's own: Telegram bots fetch 20 MB at most) is one line and no task: the declared size is
  checked before downloading and the bytes again while they stream;
- each file is written to ``<data dir>/inbox/<update>/``, mode 0600, under a safe name
  (:func:`core.files.safe_name`), never into a working directory and never run. The commands give it
  to a task (``core.files.adopt``); :func:`release` removes what was left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import ROLE_RANK
from core.files import safe_name, size_text, unique_name
from core.messages import FileRef, Inbound

if TYPE_CHECKING:
    from core.config import Config

log = logging.getLogger(__name__)

STAGING = "inbox"
STALE_S = 24 * 3600.0  # a staged folder nobody took (a crash between fetch and task) is removed after a day
VOICE_KINDS = ("voice", "audio")
VOICE_HINT = (
    "🎙 Voice notes need a transcription endpoint: set voice.url and voice.key_env in bots.yaml (README: Voice)."
)

Fetch = Callable[[FileRef], AsyncIterator[bytes]]
"""A transport's download of one file, as chunks; it raises :class:`FetchFailed` (one clean line, no URL)."""


class FetchFailed(Exception):
    """The platform would not give the file (gone, too big for its API, the network): one line, no token in it."""


@dataclass(frozen=True)
class Received:
    """A message with its files staged (their ``path`` set), or the one line that refuses it."""

    inbound: Inbound
    refusal: str = ""


def is_voice(inbound: Inbound) -> bool:
    """A voice note (or audio clip) on its own, with no text: it is to be transcribed, not attached."""
    return len(inbound.files) == 1 and inbound.files[0].kind in VOICE_KINDS and not inbound.text.strip()


def staged(inbound: Inbound) -> list[Path]:
    """The staged files of a received message, in order (none before :func:`receive`)."""
    return [Path(f.path) for f in inbound.files if f.path and Path(f.path).is_file()]


async def receive(
    inbound: Inbound, fetch: Fetch, *, config: Config, home: Path, platform_max_bytes: int | None = None
) -> Received:
    """Check and fetch a message's files (see the module's docstring); never raises for a bad file."""
    if not inbound.files or inbound.tap is not None:
        return Received(inbound)
    role = config.roles.role_of(inbound.chat.platform, inbound.user_id)
    if ROLE_RANK[role] < ROLE_RANK["operator"]:
        return Received(inbound)  # not theirs to send: the commands refuse it, and nothing is fetched
    voice = is_voice(inbound)
    if voice and config.voice.endpoint() is None:
        return Received(inbound, VOICE_HINT)
    files = config.files
    if len(inbound.files) > files.max_files:
        return Received(
            inbound, f"📎 {len(inbound.files)} files in one message; at most {files.max_files} (files.max_files)."
        )
    limit, key = (
        (int(config.voice.max_mb * 1024 * 1024), "voice.max_mb") if voice else (files.max_bytes(), "files.max_mb")
    )
    if platform_max_bytes is not None and platform_max_bytes < limit:
        limit, key = platform_max_bytes, f"{inbound.chat.platform.capitalize()}'s limit for bots"
    for ref in inbound.files:
        if ref.size > limit:
            return Received(inbound, _too_big(ref.name, ref.size, limit, key))
    folder = _staging(home, inbound.event_id)
    got: list[FileRef] = []
    current = inbound.files[0]
    try:
        for ref in inbound.files:
            current = ref
            name = unique_name(safe_name(ref.name, fallback=_fallback(ref)), [f.name for f in got])
            size = await _download(fetch, ref, folder / name, limit)
            if size is None:
                return Received(inbound, _too_big(ref.name, limit + 1, limit, key, streamed=True))
            got.append(replace(ref, name=name, size=size, path=str(folder / name)))
    except FetchFailed as exc:
        what = safe_name(current.name, fallback=_fallback(current))
        return Received(inbound, f"📎 Could not fetch {what} from {inbound.chat.platform}: {exc}. Send it again.")
    except OSError as exc:
        log.warning("could not stage a received file: %s", exc)
        return Received(inbound, f"📎 Could not save the file ({exc.strerror or exc}); nothing was started.")
    finally:
        if len(got) < len(inbound.files):
            shutil.rmtree(folder, ignore_errors=True)
    return Received(replace(inbound, files=tuple(got)))


def release(home: Path, inbound: Inbound) -> None:
    """Remove what was staged for this message and not taken by a task, and folders left by a crash."""
    root = home / STAGING
    shutil.rmtree(_staging(home, inbound.event_id, make=False), ignore_errors=True)
    with contextlib.suppress(OSError):
        cutoff = time.time() - STALE_S
        for folder in root.iterdir():
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


async def _download(fetch: Fetch, ref: FileRef, target: Path, limit: int) -> int | None:
    """Stream one file to ``target`` (0600); its size, or None when it grew past ``limit`` (then removed)."""
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        async for chunk in fetch(ref):
            size += len(chunk)
            if size > limit:
                out.close()
                target.unlink(missing_ok=True)
                return None
            out.write(chunk)
    return size


def _staging(home: Path, event_id: str, *, make: bool = True) -> Path:
    folder = home / STAGING / safe_name(event_id.replace(":", "-"), fallback="update")
    if make:
        shutil.rmtree(folder, ignore_errors=True)  # an update handled again starts clean
        folder.mkdir(parents=True, mode=0o700)
    return folder


def _fallback(ref: FileRef) -> str:
    ext = {"photo": "jpg", "voice": "ogg", "audio": "mp3"}.get(ref.kind, "bin")
    return f"{ref.kind}.{ext}"


def _too_big(name: str, size: int, limit: int, key: str, *, streamed: bool = False) -> str:
    what = f"is over {size_text(limit)}" if streamed else f"is {size_text(size)}"
    return f"📎 {safe_name(name)} {what}; the limit is {size_text(limit)} ({key}), so nothing was started."


__all__ = ["STAGING", "VOICE_HINT", "VOICE_KINDS", "Fetch", "FetchFailed", "Received", "is_voice", "receive",
           "release", "staged"]  # fmt: skip
