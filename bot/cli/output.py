"""``--json`` output for the CLI's commands: JSON text without float noise."""

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
