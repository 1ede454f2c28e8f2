"""Finding, reading and validating bots.yaml, with errors that name their key path in one line.

Looked up in order: the given path (``--config``), $ORCHESTRA_CONFIG, ./bots.yaml,
$ORCHESTRA_HOME/bots.yaml, then the copy shipped inside the package. A config found unchanged
since it was last validated comes from :mod:`core.config.cache` (no YAML, no validation).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config.cache import FileCache
from core.config.facts import PACKAGED_CONFIG, config_candidates, find_config, read_config_file, store_facts
from core.config.schema import Config
from core.errors import ConfigError

if TYPE_CHECKING:
    import os

    from pydantic import ValidationError

_FRIENDLY = {
    "greater_than_equal": "must be ≥ {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be ≤ {le}",
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "literal_error": "must be one of {expected}",
    "int_parsing": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
}


def describe_errors(exc: ValidationError, *, prefix: str = "") -> str:
    """A pydantic error as one line: ``key.path: what is wrong`` for each, joined by ``; ``.

    ``prefix`` goes before each key path (``routing.rules.0.``, say).
    """
    return "; ".join(_explain(error, prefix) for error in exc.errors())


def _explain(error: Any, prefix: str) -> str:
    path = prefix + ".".join(str(p) for p in error["loc"])
    template = _FRIENDLY.get(error["type"])
    if template is not None:
        try:
            message = template.format(**error.get("ctx", {}))
        except (KeyError, IndexError):
            message = error["msg"]
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    path = path.rstrip(".")
    return f"{path}: {message}" if path else message


def parse_config(data: Any, *, source: str = "bots.yaml") -> Config:
    """Validate already-loaded YAML data; raise ConfigError naming every bad key path."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_errors(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to validate") from None


def read_yaml(path: Path, raw: bytes) -> Any:
    """YAML data from a file's bytes; a key given twice is an error; ConfigError in one line."""
    import yaml

    from core.config.strict_yaml import StrictLoader

    try:
        return yaml.load(raw.decode("utf-8"), Loader=StrictLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    except RecursionError:
        raise ConfigError(f"{path}: cannot read YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: cannot read YAML ({first})") from None


def load_config(path: Path | None = None) -> tuple[Config, Path]:
    """Find, read and validate bots.yaml (see the module's docstring for the search order).

    Returns the config and the file it came from; raises ConfigError (one line, naming the key
    path) when none is found or the one found is invalid. A file that failed is never cached, so it
    fails the same way every time until it is fixed.
    """
    found = find_config(path)
    raw, info = read_config_file(found)
    return load_file(found, raw, info)[0], found


def load_file(path: Path, raw: bytes, info: os.stat_result) -> tuple[Config, bool]:
    """The config these bytes of ``path`` hold, and whether it was validated now (not read from the
    cache): a config validated now is cached together with its facts."""
    cache = FileCache(path, raw, info, kind="config")
    config: Config | None = cache.get(lambda value: type(value) is Config)
    if config is not None:
        return config, False
    config = parse_config(read_yaml(path, raw), source=str(path))
    cache.put(config)
    store_facts(path, raw, info, config)
    return config, True


__all__ = ["PACKAGED_CONFIG", "config_candidates", "describe_errors", "load_config", "parse_config", "read_yaml"]
