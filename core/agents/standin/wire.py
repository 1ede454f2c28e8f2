"""What the stand-in prints: Claude Code's stream objects, its usage and its list price."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

VERSION = "2.1.332 (Claude Code stand-in)"
DEFAULT_MODEL = "claude-sonnet-4-5"
# Claude Sonnet 4.5 list prices in USD per million tokens; hard-coded to keep start-up light.
PRICE_INPUT = 3.00
PRICE_OUTPUT = 15.00
PRICE_CACHE_READ = 0.30
PRICE_CACHE_WRITE = 3.75

USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
TOOLS = [
    "Task",
    "Bash",
    "Glob",
    "Grep",
    "LS",
    "Read",
    "Edit",
    "MultiEdit",
    "Write",
    "NotebookEdit",
    "WebFetch",
    "TodoWrite",
    "WebSearch",
]


def price(usage: dict[str, int]) -> float:
    """Sonnet 4.5 list price of Anthropic-style usage (input excludes cache)."""
    dollars = (
        usage["input_tokens"] * PRICE_INPUT
        + usage["output_tokens"] * PRICE_OUTPUT
        + usage["cache_read_input_tokens"] * PRICE_CACHE_READ
        + usage["cache_creation_input_tokens"] * PRICE_CACHE_WRITE
    ) / 1_000_000
    return round(dollars, 10)


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def wire_usage(usage: dict[str, int]) -> dict[str, Any]:
    """The ``usage`` object of an assistant line or of the result, from our four counts."""
    return {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"],
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": usage["output_tokens"],
        "service_tier": "standard",
    }


def uuid4() -> str:
    raw = bytearray(os.urandom(16))  # the uuid module costs start-up time for one call
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def write_line(line: str) -> None:
    """One line on stdout, flushed at once; a reader that went away ends the process (exit 1)."""
    try:
        sys.stdout.buffer.write(line.encode("utf-8", "replace") + b"\n")
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        os._exit(1)
