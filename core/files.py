"""Files both ways, on disk: what a person sent lands in the task's ``.orchestra/inbox/``, what the
agent leaves in ``.orchestra/outbox/`` goes back to the chat when its run ends.

A received file is staged by :mod:`core.inbox` (downloaded under the data dir, never into a working
directory) and given to a task at delegation: it moves into the task's own folder
(``tasks/<id>/inbox/``), and the launch copies it into the working directory the agent gets (its
worktree when it has one, see ``core.engine.dispatch``), next to a ``.gitignore`` that keeps the
whole ``.orchestra/`` folder out of git (so out of the task's diff and its end-of-run commit).
Files are written mode 0600: never executable, and nothing here ever runs them.

When a run ends, regular files in the outbox folder (no symlinks, nothing outside it, at most
``files.outbox_max_files`` of at most ``files.outbox_max_mb``) move to ``tasks/<id>/sent/``; the
completion's transaction queues one document per file, so each is sent once (a follow-up in the
same worktree finds the outbox empty).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

log = logging.getLogger(__name__)

FOLDER = ".orchestra"
INBOX = f"{FOLDER}/inbox"
OUTBOX = f"{FOLDER}/outbox"
TASK_INBOX = "inbox"  # in the task's own folder: what goes into its working directory at launch
TASK_SENT = "sent"  # in the task's own folder: what its run left in the outbox, as sent to the chats
GITIGNORE = "# Orchestra's files for and from the agent: never committed\n*\n"  # .orchestra/.gitignore
NAME_CHARS = 100
_UNSAFE = re.compile(r"[^\w.+@=-]+")


@dataclass(frozen=True)
class OutFile:
    """A file an agent left for the chat: moved to ``path`` (under the task's folder), ``size`` bytes."""

    name: str
    path: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "size": self.size}


@dataclass(frozen=True)
class Outgoing:
    """What the outbox folder held at the end of a run: the files to send and those left out, as lines."""

    files: tuple[OutFile, ...] = ()
    skipped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"files": [f.to_dict() for f in self.files], "skipped": list(self.skipped)}


def safe_name(name: str, *, fallback: str = "file") -> str:
    """A file name that stays where it is put: no folders, no leading dot, no ``..``, no control
    characters, at most :data:`NAME_CHARS` characters (the extension kept), never empty.

    ``../../etc/passwd`` is ``passwd``; ``.bashrc`` is ``bashrc``; ``a b?.png`` is ``a_b_.png``.
    """
    base = unicodedata.normalize("NFC", name.replace("\\", "/")).split("/")[-1]
    base = _UNSAFE.sub("_", base).strip("._ ")
    while ".." in base:
        base = base.replace("..", ".")
    if not base:
        base = fallback
    if len(base) > NAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        base = base[: NAME_CHARS - len(ext) - 1].rstrip("._") + (f".{ext}" if ext else "")
    return base


def unique_name(name: str, taken: Iterable[str]) -> str:
    """``name``, or ``name-2.ext``, ``name-3.ext``, … when that is taken (case-insensitively)."""
    used = {t.lower() for t in taken}
    if name.lower() not in used:
        return name
    stem, dot, ext = name.rpartition(".")
    stem, ext = (stem, f".{ext}") if dot and stem else (name, "")
    n = 2
    while f"{stem}-{n}{ext}".lower() in used:
        n += 1
    return f"{stem}-{n}{ext}"


OUTBOX_HINT = f"(Files you write to {OUTBOX}/ are sent to the person when you finish.)"
"""What the agent is told at launch when it was sent files (the task's text, as people read it, does not say it)."""


def attached_line(names: Sequence[str]) -> str:
    """What the task's text says of its files: their names and where they are."""
    return f"Attached files (in {INBOX}/): {', '.join(names)}"


def with_files(text: str, names: Sequence[str]) -> str:
    """The task's text with its files named after it (the text alone when there are none)."""
    return f"{text}\n\n{attached_line(names)}" if names else text


def adopt(staged: Sequence[Path], folder: Path) -> list[str]:
    """Move staged files into ``folder`` (a task's ``inbox/``), names kept unique; the names used.

    A name already there (a second reply with ``screenshot.png``) gets ``screenshot-2.png``.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    names: list[str] = []
    for path in staged:
        name = unique_name(safe_name(path.name), [*names, *(p.name for p in folder.iterdir())])
        os.replace(path, folder / name)
        os.chmod(folder / name, 0o600)
        names.append(name)
    return names


def prepare_workdir(cwd: str | Path, task_folder: Path) -> list[str]:
    """Make ``.orchestra/`` in the agent's working directory (inbox, outbox, a ``.gitignore`` of
    everything), and copy the task's received files into its inbox; the names copied.

    A file of the same name there already (an earlier task's) is replaced: the prompt names this one.
    """
    root = Path(cwd) / FOLDER
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise OSError(f"{root} is not a folder of ours; remove it and try again")
    for sub in (root / "inbox", root / "outbox"):
        sub.mkdir(parents=True, exist_ok=True, mode=0o700)
    ignore = root / ".gitignore"
    if not ignore.is_file():
        ignore.write_text(GITIGNORE, encoding="utf-8")
    received = task_folder / TASK_INBOX
    copied: list[str] = []
    if received.is_dir():
        for path in sorted(received.iterdir()):
            if not path.is_file() or path.is_symlink():
                continue
            target = root / "inbox" / path.name
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            shutil.copyfile(path, target, follow_symlinks=False)
            os.chmod(target, 0o600)
            copied.append(path.name)
    return copied


def deliver_now(staged: Sequence[Path], cwd: str | Path, task_folder: Path) -> list[str]:
    """Files sent to a task that is running: into its working directory at once (and its folder,
    so a relaunch has them too); the names used."""
    names = adopt(staged, task_folder / TASK_INBOX)
    prepare_workdir(cwd, task_folder)
    return names


def collect_outbox(cwd: str | Path, task_folder: Path, *, max_files: int, max_bytes: int) -> Outgoing:
    """Move what the agent left in ``<cwd>/.orchestra/outbox/`` to the task's ``sent/`` folder.

    Regular files only, oldest first; a symlink, a folder, a file over ``max_bytes`` or past
    ``max_files`` is left where it is and named in ``skipped``. Never raises: a run's ending must
    be recorded whatever its outbox holds.
    """
    folder = Path(cwd) / OUTBOX
    try:
        if folder.is_symlink() or not folder.is_dir():
            return Outgoing()
        entries = sorted(folder.iterdir(), key=_mtime)
    except OSError:
        return Outgoing()
    sent = task_folder / TASK_SENT
    files: list[OutFile] = []
    skipped: list[str] = []
    for path in entries:
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            skipped.append(f"{path.name} (not a regular file)")
            continue
        if info.st_size > max_bytes:
            skipped.append(f"{path.name} ({_mb(info.st_size)}, over the {_mb(max_bytes)} limit)")
            continue
        if len(files) >= max_files:
            skipped.append(f"{path.name} (over {max_files} files)")
            continue
        taken = [f.name for f in files] + (sorted(p.name for p in sent.iterdir()) if sent.is_dir() else [])
        name = unique_name(safe_name(path.name), taken)
        try:
            sent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.replace(path, sent / name)  # the same file system: both under the data dir or both not
        except OSError:
            try:
                shutil.copyfile(path, sent / name, follow_symlinks=False)
                path.unlink()
            except OSError as exc:
                log.warning("could not take %s from the outbox: %s", path.name, exc)
                continue
        with contextlib.suppress(OSError):
            os.chmod(sent / name, 0o600)
        files.append(OutFile(name, str(sent / name), info.st_size))
    return Outgoing(_already_taken(sent, files), tuple(skipped))


def _already_taken(sent: Path, now: list[OutFile]) -> tuple[OutFile, ...]:
    """Everything in the task's ``sent/``: what this pass moved, and what an earlier pass for the same
    ending moved (an engine that stopped before recording it; a second report of the same result)."""
    known = {f.name for f in now}
    earlier: list[OutFile] = []
    with contextlib.suppress(OSError):
        for path in sorted(sent.iterdir(), key=_mtime):
            if path.name not in known and path.is_file() and not path.is_symlink():
                earlier.append(OutFile(path.name, str(path), path.stat().st_size))
    return (*earlier, *now)


def _mtime(path: Path) -> tuple[float, str]:
    try:
        return path.lstat().st_mtime, path.name
    except OSError:
        return 0.0, path.name


def _mb(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KB"


def size_text(size: int) -> str:
    """A size as a person reads it (``3.2 MB``, ``12 KB``)."""
    return _mb(size)


__all__ = [
    "FOLDER", "GITIGNORE", "INBOX", "OUTBOX", "OUTBOX_HINT", "TASK_INBOX", "TASK_SENT", "OutFile", "Outgoing", "adopt",
    "attached_line", "collect_outbox", "deliver_now", "prepare_workdir", "safe_name", "size_text", "unique_name",
    "with_files",
]  # fmt: skip
