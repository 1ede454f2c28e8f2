"""``orchestra agents add KIND``: a working agent entry written into bots.yaml, every comment kept.

The entry goes in as text, after the last line of the ``agents:`` block, in the file's own
indentation: loading and dumping the YAML would drop every comment of a file that is mostly
comments. The new text is validated by the real loader before it replaces the file (atomically:
a crash leaves the old file or the new one, never half of one). It names variables (``env_from``)
and never holds a value, and it maps no category: the agent gets work only when named.

Which file: the bots.yaml in use. When that is the copy shipped in the package, the new file is
``$ORCHESTRA_HOME/bots.yaml`` if ``ORCHESTRA_HOME`` is set (found from any directory), else
``./bots.yaml``, each starting as a copy of the shipped one; both are where the loader looks next.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from core.errors import ConfigError

_AGENTS_BLOCK = re.compile(r"^agents:[ \t]*(#.*)?$")
_AGENTS_EMPTY = re.compile(r"^agents:[ \t]*\{[ \t]*\}[ \t]*(#.*)?$")


def agent_entry(
    kind: str,
    *,
    key_env: str | None = None,
    base_url: str | None = None,
    base_url_env: str | None = None,
    model: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """The bots.yaml entry for a CLI of ``kind``, from its recipe (``core.agents.catalog``).

    ``key_env`` is the variable of ours that holds its key (default: the one the CLI reads);
    ``base_url`` (a literal URL) or ``base_url_env`` (our variable holding one) points it at
    another endpoint. ConfigError (one line) for a kind with no recipe or a bad combination.
    """
    from core.agents.catalog import RECIPES, recipe_for

    recipe = recipe_for(kind)
    if recipe is None:
        known = ", ".join(RECIPES)
        raise ConfigError(f"no recipe for kind {kind!r} (known: {known}); write its entry by hand (README Agents)")
    if base_url and base_url_env:
        raise ConfigError("give --base-url or --base-url-env, not both")
    if base_url_env and recipe.base_url_literal:
        raise ConfigError(f"{kind} reads its endpoint from the entry itself, not from a variable: use --base-url URL")
    if base_url is not None:
        _check_url(base_url)
    custom = bool(base_url or base_url_env)
    agent_var = (recipe.endpoint_key_env or recipe.key_env) if custom else recipe.key_env
    entry: dict[str, Any] = {"kind": kind, "command": command or recipe.binary}
    if model or recipe.model:
        entry["model"] = model or recipe.model
    env = dict(recipe.endpoint_env) if custom else {}
    if base_url:
        env[recipe.base_url_env] = base_url
    if env:
        entry["env"] = env
    env_from = {agent_var: key_env or agent_var}
    if base_url_env:
        env_from[recipe.base_url_env] = base_url_env
    entry["env_from"] = env_from
    return entry


def _check_url(url: str) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"--base-url {url!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--base-url {url!r} is not an http(s) URL")
    if parts.username or parts.password or parts.query:
        raise ConfigError("--base-url holds a user, password or query: put no secret in bots.yaml (use --key-env)")


def target_for(in_use: Path) -> Path:
    """The file ``agents add`` writes: the one in use, unless that is the packaged copy (module docstring)."""
    from core.config.facts import PACKAGED_CONFIG

    if in_use.resolve() != PACKAGED_CONFIG.resolve():
        return in_use
    home = os.environ.get("ORCHESTRA_HOME")
    return Path(home).expanduser() / "bots.yaml" if home else Path.cwd() / "bots.yaml"


def add_agent(config_path: Path | None, name: str, entry: dict[str, Any], *, note: str = "") -> Path:
    """Insert ``entry`` as ``agents.<name>`` into the bots.yaml in use (``--config``, else the one
    the loader finds); returns the file written.

    The file in use must be valid (it is loaded first) and must not have the name; the result is
    validated before it replaces the target. ``note`` becomes a comment line above the entry.
    """
    from core.config.loading import load_config, parse_config, read_yaml

    config, in_use = load_config(config_path)
    if name in config.agents:
        raise ConfigError(
            f"agents.{name} is in {in_use} already: `orchestra agents test {name}` tries it, "
            "or give the new one another name with --name"
        )
    target = target_for(in_use)
    if target != in_use and target.exists():
        raise ConfigError(f"{target} exists but is not the bots.yaml in use ({in_use}): pass --config {target}")
    text = insert_agent(in_use.read_text(encoding="utf-8"), name, entry, note=note)
    new = parse_config(read_yaml(target, text.encode("utf-8")), source=str(target))
    if name not in new.agents:  # the insertion landed outside the block: never write that
        raise ConfigError(f"{in_use}: cannot find where agents.{name} goes; add it by hand")
    _replace(target, text)
    return target


def insert_agent(text: str, name: str, entry: dict[str, Any], *, note: str = "") -> str:
    """``text`` with the entry added at the end of its top-level ``agents:`` block (comments kept)."""
    import yaml

    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if _AGENTS_BLOCK.match(line) or _AGENTS_EMPTY.match(line)), None)
    if start is None:
        if any(line.startswith("agents:") for line in lines):
            raise ConfigError("bots.yaml writes `agents:` in flow style; add the entry by hand")
        lines.append("\nagents:\n")
        start = len(lines) - 1
    elif _AGENTS_EMPTY.match(lines[start]):
        lines[start] = "agents:\n"
    indent, end = _block(lines, start)
    body = yaml.safe_dump({name: entry}, sort_keys=False, default_flow_style=False, indent=indent, width=1000)
    added = [f"{' ' * indent}# {note}\n"] if note else []
    added += [f"{' ' * indent}{line}\n" for line in body.splitlines()]
    return "".join(lines[:end] + added + lines[end:])


def _block(lines: list[str], start: int) -> tuple[int, int]:
    """The indentation of the block's entries, and the index just after its last indented line."""
    indent = 0
    end = start + 1
    for i in range(start + 1, len(lines)):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            continue
        width = len(line) - len(line.lstrip(" "))
        if width == 0:
            break  # the next top-level key, or a comment at column 0 that belongs to it
        if not indent and not stripped.startswith("#"):
            indent = width
        end = i + 1
    return indent or 2, end


def _replace(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically, keeping its mode (a new file: 0644, its folder 0700)."""
    if not target.parent.exists():
        target.parent.mkdir(parents=True, mode=0o700)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=".bots.yaml.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["add_agent", "agent_entry", "insert_agent", "target_for"]
