"""The schema's building blocks: the strict base model and the field types several parts share.

One annotated type per kind of value, each checked in one place: an environment variable's
name, an http(s) URL, a duration in seconds.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

# Patterns as strings: ``re`` compiles (and caches) each on first use, so importing costs nothing.
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME = r"[a-z][a-z0-9_-]{0,31}"
_URL = r"https?://[^\s/]+"

MAX_SECONDS = 30 * 24 * 3600  # the longest duration: every wait must fit select, sleep and timers


class StrictModel(BaseModel):
    """A part of bots.yaml: unknown keys are errors, values are read-only once validated.

    ``defer_build``: a model's validator is built on its first validation, not at import, so a
    command that finds its config in the cache (``core.config.cache``) never pays for it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _env_var_name(name: str) -> str:
    if not re.fullmatch(_ENV_NAME, name):
        raise ValueError(f"{name!r} must name an environment variable (its value never goes in bots.yaml)")
    return name


def _http_url(url: str) -> str:
    if not re.match(_URL, url):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url


def _duration(seconds: float) -> float:
    if not seconds <= MAX_SECONDS:  # ``not <=`` refuses inf and NaN too (a larger one crashed runners)
        raise ValueError(f"must be at most {MAX_SECONDS} (30 days)")
    return seconds


EnvVarName = Annotated[str, AfterValidator(_env_var_name)]
"""The name of an environment variable (``ANTHROPIC_API_KEY``), never its value."""

Url = Annotated[str, AfterValidator(_http_url)]
"""An ``http://`` or ``https://`` address with a host."""

Seconds = Annotated[float, AfterValidator(_duration)]
"""A duration in seconds, finite and at most 30 days."""


def is_name(name: str) -> bool:
    """True for an agent's or a channel's name: a lowercase letter, then letters, digits, '-' or '_' (≤ 32)."""
    return re.fullmatch(_NAME, name) is not None
