"""What a command needs of bots.yaml before the whole validated config: where it is, the data dir, the secrets' names.

``orchestra status`` and ``show`` read the store and print; building the validated
:class:`~core.config.Config` for that would import pydantic and every schema (~100 ms, more than
the rest of the command). So loading a config also caches these few facts next to it, and
:func:`load_facts` reads them back without pydantic; any miss means one full load, which stores
them again. Only the names of secret variables are kept, never a value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.config.cache import FileCache, read_file
from core.errors import ConfigError

PACKAGED_CONFIG = Path(__file__).resolve().parent.parent / "default_bots.yaml"


@dataclass(frozen=True)
class ConfigFacts:
    """A validated bots.yaml's data dir, secret variable names and time zone (as configured, before the environment)."""

    data_dir: str | None
    secret_sources: tuple[str, ...]
    telegram_token_env: str
    timezone: str

    def home(self) -> Path:
        """The data directory, as :meth:`Config.home <core.config.Config.home>` says it."""
        return data_home(self.data_dir)

    def known_secrets(self) -> dict[str, str]:
        """Every secret the config names, by variable, read from our environment (as ``Config.known_secrets``)."""
        return secrets_in_environment(self.secret_sources, self.telegram_token_env)


def data_home(data_dir: str | None) -> Path:
    """The data directory: $ORCHESTRA_HOME, else bots.yaml's ``data_dir``, else the user's data dir."""
    env = os.environ.get("ORCHESTRA_HOME")
    if env:
        return Path(env).expanduser()
    if data_dir:
        return Path(data_dir).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("orchestra"))


def secrets_in_environment(sources: list[str] | tuple[str, ...], telegram_token_env: str) -> dict[str, str]:
    """The values of the named variables that are set (a Bot API token's secret half is one more)."""
    found = {source: os.environ[source] for source in sources if os.environ.get(source, "").strip()}
    token = found.get(telegram_token_env, "")
    if ":" in token:  # a Bot API token is <bot id>:<secret>; the secret part alone is one too
        found[telegram_token_env + ":secret"] = token.split(":", 1)[1]
    return found


def config_candidates(path: Path | None = None) -> list[Path]:
    """Where bots.yaml is looked for, in order (the first that is a file wins)."""
    if path is not None:
        return [path]
    if os.environ.get("ORCHESTRA_CONFIG"):
        return [Path(os.environ["ORCHESTRA_CONFIG"])]
    candidates = [Path.cwd() / "bots.yaml"]
    if os.environ.get("ORCHESTRA_HOME"):
        candidates.append(Path(os.environ["ORCHESTRA_HOME"]) / "bots.yaml")
    candidates.append(PACKAGED_CONFIG)
    return candidates


def find_config(path: Path | None = None) -> Path:
    """The bots.yaml that is used: the first candidate that is a file; ConfigError when there is none."""
    candidates = config_candidates(path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no bots.yaml found (looked at {', '.join(str(c) for c in candidates)})")


def read_config_file(path: Path) -> tuple[bytes, os.stat_result]:
    """The file's bytes and stat; ConfigError (one line) when it cannot be read."""
    try:
        return read_file(path)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: cannot read YAML ({first})") from None


def load_facts(path: Path | None = None) -> tuple[ConfigFacts, Path]:
    """The facts of the bots.yaml in use and its path: from the cache, else by loading it whole.

    Raises what :func:`~core.config.load_config` raises for a missing or invalid file, so a
    command that starts from the facts refuses a bad bots.yaml exactly as one that loads it.
    """
    found = find_config(path)
    raw, info = read_config_file(found)
    facts = FileCache(found, raw, info, kind="facts").get(lambda value: type(value) is ConfigFacts)
    if facts is not None:
        return facts, found
    from core.config.loading import load_file

    config, validated = load_file(found, raw, info)  # the bytes read above: one read, one key
    if not validated:  # read from the config's own entry: its facts were not stored with it
        store_facts(found, raw, info, config)
    return facts_of(config), found


def facts_of(config: object) -> ConfigFacts:
    """The facts of a validated config (duck-typed here: importing the schema is what this module avoids)."""
    return ConfigFacts(
        data_dir=getattr(config, "data_dir", None),
        secret_sources=tuple(config.secret_sources()),  # type: ignore[attr-defined]
        telegram_token_env=config.telegram.token_env,  # type: ignore[attr-defined]
        timezone=config.digest.timezone,  # type: ignore[attr-defined]
    )


def store_facts(path: Path, raw: bytes, info: os.stat_result, config: object) -> None:
    """Cache the facts of a config just validated from these bytes (a failure costs only speed)."""
    FileCache(path, raw, info, kind="facts").put(facts_of(config))
