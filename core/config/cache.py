"""A cache of validated files, so a command that finds bots.yaml unchanged skips YAML and validation.

One pickle per file in ``$XDG_CACHE_HOME/orchestra/`` (else ``~/.cache/orchestra``; the folder
mode 700, each file 600, replaced atomically): the validated :class:`Config` of a bots.yaml, or
the rules of ``core/default_rules.yaml``. An entry is used only when its key matches: the file's
resolved path, inode, size, mtime and a checksum of its bytes (an edit that keeps the size within
one mtime tick is still seen), the code that validates (the sizes and mtimes of the
``core/config`` and ``core/routing`` modules, the Python and pydantic versions) and every
environment variable loading could read (``ORCHESTRA_*``, ``HOME``, ``XDG_*``, ``PYTHONTZPATH``:
the search order reads ``ORCHESTRA_CONFIG`` and ``ORCHESTRA_HOME``, the time-zone check the
last). The key is stored as a digest, and a Config holds only the names of secret variables, so
no secret value reaches the cache.

Failure costs only speed: a missing, stale, unreadable or foreign entry means a full validation,
and a folder that cannot be written means no caching. Only what validated is ever stored.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from _blake2 import blake2b  # what hashlib.blake2b is, without hashlib's OpenSSL import (~4 ms)
except ImportError:  # pragma: no cover - an interpreter built without it
    from hashlib import blake2b

try:
    from _pickle import dump, load  # what pickle uses, without pickle.py's own imports (~1 ms)
except ImportError:  # pragma: no cover - an interpreter without the C accelerator
    from pickle import dump, load

_FORMAT = b"orchestra-config-cache-1"
_CORE = Path(__file__).resolve().parent.parent
_CODE = (_CORE / "config", _CORE / "routing")  # what decides validity, and the pickled classes
_ENV_PREFIXES = ("ORCHESTRA_", "XDG_")
_ENV_NAMES = ("HOME", "PYTHONTZPATH")  # PYTHONTZPATH: where zoneinfo finds the time zones it validates


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/orchestra``, else ``~/.cache/orchestra``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "orchestra"


def read_file(path: Path) -> tuple[bytes, os.stat_result]:
    """A file's bytes and the stat of what was read (``OSError`` as ``open`` raises it)."""
    with open(path, "rb") as fh:
        return fh.read(), os.fstat(fh.fileno())


class FileCache:
    """The cache entry of one file as it is now (``raw`` its bytes, ``info`` its stat).

    ``kind`` names what is stored (``config``, ``rules``): each kind has its own entry per file.
    """

    def __init__(self, path: Path, raw: bytes, info: os.stat_result, *, kind: str) -> None:
        resolved = str(path.resolve())
        name = blake2b(f"{kind}\0{resolved}".encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()
        self.file = cache_dir() / f"{name}.pickle"
        key = [kind, resolved, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, zlib.crc32(raw)]
        key += [sys.version, _pydantic_version(), *_code_stamp()]
        key += sorted((k, v) for k, v in os.environ.items() if k in _ENV_NAMES or k.startswith(_ENV_PREFIXES))
        self.key = blake2b(repr(key).encode("utf-8", "surrogateescape"), digest_size=32).digest()

    def get(self, is_valid: Callable[[Any], bool]) -> Any:
        """The stored value when the entry exists, is ours, matches and ``is_valid``; else None (never raises)."""
        try:
            fd = os.open(self.file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as fh:
                if not _private(os.fstat(fh.fileno())) or not _private(os.stat(self.file.parent)):
                    return None  # only files nobody else could have written are unpickled
                if fh.read(len(_FORMAT) + len(self.key)) != _FORMAT + self.key:
                    return None
                value = load(fh)
        except Exception as exc:  # noqa: BLE001 - a torn or foreign entry, moved classes: validate instead
            _debug("cache entry %s unusable: %s", self.file, exc)
            return None
        return value if is_valid(value) else None

    def put(self, value: Any) -> None:
        """Store what was just validated from these bytes; any failure is ignored."""
        import tempfile  # only on a miss

        folder = self.file.parent
        tmp = ""
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(os.stat(folder)):
                return
            os.chmod(folder, 0o700)  # one made by hand (0755, say): nobody else lists our entries
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pickle", dir=folder)  # mode 600
            with os.fdopen(fd, "wb") as fh:
                fh.write(_FORMAT + self.key)
                dump(value, fh, protocol=5)
            os.replace(tmp, self.file)
            tmp = ""
        except Exception as exc:  # noqa: BLE001 - a read-only or full disk: only speed is lost
            _debug("cache entry %s not written: %s", self.file, exc)
        finally:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _debug(message: str, *args: object) -> None:
    import logging  # only on a failure: logging costs a command that hits the cache ~5 ms

    logging.getLogger(__name__).debug(message, *args)


def _private(info: os.stat_result) -> bool:
    """Ours, and writable by nobody else (a pickle from anyone else could run code)."""
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _pydantic_version() -> str:
    """Which pydantic validated (and would unpickle) an entry, found without importing it (~25 ms)."""
    from importlib.util import find_spec

    spec = find_spec("pydantic")
    origin = spec.origin if spec is not None else None
    if not origin:
        return "none"
    try:
        info = os.stat(os.path.join(os.path.dirname(origin), "version.py"))
    except OSError:
        return origin
    return f"{origin}:{info.st_size}:{info.st_mtime_ns}"


def _code_stamp() -> list[tuple[str, int, int]]:
    """Path, size and mtime of each module that validates a file or is pickled with it."""
    paths: list[str] = []
    for place in _CODE:
        with contextlib.suppress(OSError):
            paths += sorted(entry.path for entry in os.scandir(place) if entry.name.endswith(".py"))
    stamps = []
    for path in paths:
        with contextlib.suppress(OSError):
            info = os.stat(path)
            stamps.append((path, info.st_size, info.st_mtime_ns))
    return stamps
