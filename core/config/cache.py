"""A cache of validated configs, so a command that finds bots.yaml unchanged skips YAML and validation.

One pickle per config file in ``$XDG_CACHE_HOME/orchestra/`` (else ``~/.cache/orchestra``; the
folder mode 700, each file 600, replaced atomically). An entry is used only when its key matches:
the file's resolved path, inode, size, mtime and a checksum of its bytes (an edit that keeps the
size within one mtime tick is still seen), the code that validates (the ``core/config`` modules'
and the rule compiler's sizes and mtimes, the Python and pydantic versions) and every environment
variable loading could read (``ORCHESTRA_*``, ``HOME``, ``XDG_*``, ``PYTHONTZPATH``: the search
order reads ``ORCHESTRA_CONFIG`` and ``ORCHESTRA_HOME``, the time-zone check the last). The key is stored as a digest,
and a Config holds only the names of secret variables, so no secret value reaches the cache.

Failure costs only speed: a missing, stale, unreadable or foreign entry means a full validation,
and a folder that cannot be written means no caching. Only a valid config is ever stored.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

try:
    from _blake2 import blake2b  # what hashlib.blake2b is, without hashlib's OpenSSL import (~4 ms)
except ImportError:  # pragma: no cover - an interpreter built without it
    from hashlib import blake2b

try:
    from _pickle import dump, load  # what pickle uses, without pickle.py's own imports (~1 ms)
except ImportError:  # pragma: no cover - an interpreter without the C accelerator
    from pickle import dump, load

if TYPE_CHECKING:
    from core.config.schema import Config

_FORMAT = b"orchestra-config-cache-1"
_CORE = Path(__file__).resolve().parent.parent
_CODE = (_CORE / "config", _CORE / "routing" / "index.py")  # what decides validity and the pickled form
_ENV_PREFIXES = ("ORCHESTRA_", "XDG_")
_ENV_NAMES = ("HOME", "PYTHONTZPATH")  # PYTHONTZPATH: where zoneinfo finds the time zones it validates


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/orchestra``, else ``~/.cache/orchestra``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "orchestra"


class ConfigCache:
    """The cache entry of one config file, as it is now (``raw`` its bytes, ``info`` its stat)."""

    def __init__(self, path: Path, raw: bytes, info: os.stat_result) -> None:
        resolved = str(path.resolve())
        name = blake2b(resolved.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()
        self.file = cache_dir() / f"{name}.pickle"
        key = [resolved, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, zlib.crc32(raw)]
        key += [sys.version, _pydantic_version(), *_code_stamp()]
        key += sorted((k, v) for k, v in os.environ.items() if k in _ENV_NAMES or k.startswith(_ENV_PREFIXES))
        self.key = blake2b(repr(key).encode("utf-8", "surrogateescape"), digest_size=32).digest()

    def get(self) -> Config | None:
        """The cached Config when the entry exists, is ours and matches; None otherwise (never raises)."""
        try:
            fd = os.open(self.file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as fh:
                if not _private(os.fstat(fh.fileno())) or not _private(os.stat(self.file.parent)):
                    return None  # only files nobody else could have written are unpickled
                head = fh.read(len(_FORMAT) + len(self.key))
                if head != _FORMAT + self.key:
                    return None
                config: Config = load(fh)
        except Exception as exc:  # noqa: BLE001 - a torn or foreign entry, moved classes: validate instead
            _debug("config cache %s unusable: %s", self.file, exc)
            return None
        from core.config.schema import Config

        return config if type(config) is Config else None

    def put(self, config: Config) -> None:
        """Store a Config that was just validated from these bytes; any failure is ignored."""
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
                dump(config, fh, protocol=5)
            os.replace(tmp, self.file)
            tmp = ""
        except Exception as exc:  # noqa: BLE001 - a read-only or full disk: only speed is lost
            _debug("config cache %s not written: %s", self.file, exc)
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
    from pydantic.version import VERSION

    return VERSION


def _code_stamp() -> list[tuple[str, int, int]]:
    """Path, size and mtime of each module that validates a config or is pickled with it."""
    paths: list[str] = []
    for place in _CODE:
        if place.is_dir():
            with contextlib.suppress(OSError):
                paths += sorted(entry.path for entry in os.scandir(place) if entry.name.endswith(".py"))
        else:
            paths.append(str(place))
    stamps = []
    for path in paths:
        with contextlib.suppress(OSError):
            info = os.stat(path)
            stamps.append((path, info.st_size, info.st_mtime_ns))
    return stamps
