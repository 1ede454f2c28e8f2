"""What the CLI's commands print with: ``--json`` text without float noise, and a text on one line."""

from __future__ import annotations

import json
import math
from typing import Any


def as_json(data: Any, **options: Any) -> str:
    """``--json`` output, floats rounded to 6 decimals: sums of dollars carry float noise (0.037415000000000004)."""
    return json.dumps(_rounded(data), **options)


def _rounded(data: Any) -> Any:
    if isinstance(data, float):
        return round(data, 6) if math.isfinite(data) else data
    if isinstance(data, dict):
        return {key: _rounded(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_rounded(value) for value in data]
    return data


def one_line(text: str, size: int) -> str:
    """``text`` with its whitespace runs made single spaces, cut to ``size`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"
