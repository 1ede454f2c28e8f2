"""Helpers shared by the adapters and parsers of the agent CLIs.

Runner side: standard library only, and nothing slow to import (the runner runs ``python -S``).
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: keep the runner's imports small
    from collections.abc import Callable, Iterable, Mapping

from core.agents.base import AgentEvent, AgentSettings, Usage
from core.protocol import EventKind
from core.text import clip, money, token_count

MAX_ARG_BYTES = 100_000  # Linux caps one argv element at 128 KiB; stay well below it
SHORT = 200
MAX_DATA_CHARS = 4_000
RETRIES_ENV = "ORCHESTRA_MAX_RETRIES"  # optional, per agent: how often the CLI retries a failed model call
HOME_VARS = frozenset(
    {
        "CODEX_HOME",
        "GEMINI_CLI_HOME",
        "QWEN_HOME",
        "OPENCODE_CONFIG",
        "CLAUDE_CONFIG_DIR",
        "COPILOT_HOME",
        "CURSOR_CONFIG_DIR",
    }
)

# What of our environment every agent gets: what a CLI needs to run (paths, user, locale, terminal,
# time zone), proxies and CA bundles (node CLIs behind a corporate proxy). Nothing else: no tokens.
PASS_THROUGH = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "COLORTERM", "TMPDIR", "TZ",
        "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    }
)  # fmt: skip
PASS_PREFIXES = ("LC_",)

_API_STATUS = re.compile(r"\b([45]\d\d)\b")


# -- adapter side ---------------------------------------------------------------------------


def argv_safe(task_text: str) -> bool:
    """True when the task can travel as one argv element that no CLI will read as an option."""
    size = len(task_text.encode("utf-8", "surrogatepass"))
    return size <= MAX_ARG_BYTES and "\0" not in task_text and not task_text.startswith("-")


def has_flag(args: list[str], *flags: str) -> bool:
    """Whether the user's ``args`` already set one of ``flags`` (``--x``, ``--x=v`` or ``-x``)."""
    return any(arg == flag or arg.startswith(flag + "=") for arg in args for flag in flags)


def config_dir(settings: AgentSettings, *parts: str) -> str:
    """A path inside the agent's own config dir; ``ValueError`` when it has none."""
    if not settings.config_dir:
        raise ValueError(f"agent {settings.name} needs a config dir under the data dir")
    return os.path.join(settings.config_dir, *parts)


def max_retries(settings: AgentSettings) -> int | None:
    """``ORCHESTRA_MAX_RETRIES`` from the agent's ``env``, when set to a whole number ≥ 0."""
    raw = settings.env.get(RETRIES_ENV, "").strip()
    return int(raw) if raw.isdigit() else None


def agent_env(environ: Mapping[str, str], also: Iterable[str] = ()) -> dict[str, str]:
    """The part of ``environ`` an agent inherits: ``PASS_THROUGH``, ``LC_*``, and the names in ``also``
    (the agent's ``env_pass``). The agent's own ``env`` and ``env_from`` go on top of this."""
    wanted = PASS_THROUGH | set(also)
    return {k: v for k, v in environ.items() if k in wanted or k.startswith(PASS_PREFIXES)}


def merged_env(settings: AgentSettings, own: dict[str, str]) -> dict[str, str]:
    """The adapter's environment with the user's ``env`` on top (the user's always wins).

    A leading ``~`` in the config-home variables is expanded: no shell ever sees these values.
    """
    env = dict(own)
    for key, value in settings.env.items():
        env[key] = os.path.expanduser(value) if key in HOME_VARS else value
    env.pop(RETRIES_ENV, None)
    return env


# -- parser side ----------------------------------------------------------------------------


def load_json(line: str) -> dict[str, Any] | None:
    """The JSON object on a line, or None for anything else (blank, text, arrays, broken)."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        obj = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def raw_event(line: str, text: str | None = None) -> AgentEvent:
    return AgentEvent(EventKind.RAW, shorten(text if text is not None else line), {"line": line[:MAX_DATA_CHARS]})


def shorten(text: str, limit: int = SHORT) -> str:
    """An event's one-line text: the shared ``clip`` at the adapters' usual length."""
    return clip(text, limit)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and math.isfinite(value):
        return max(int(value), 0)
    return 0


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


k = token_count  # the adapters' short name for it


def add_usage(total: Usage, more: Usage) -> Usage:
    return Usage(
        input_tokens=total.input_tokens + more.input_tokens,
        output_tokens=total.output_tokens + more.output_tokens,
        cache_read_tokens=total.cache_read_tokens + more.cache_read_tokens,
        cache_write_tokens=total.cache_write_tokens + more.cache_write_tokens,
    )


def usage_event(usage: Usage, model: str | None, cost: float | None = None, *, final: bool = False) -> AgentEvent:
    cost_text = f" · {money(cost)}" if cost is not None else ""
    data: dict[str, Any] = {"usage": usage.to_dict(), "model": model, "cost_usd": cost}
    if final:
        data["final"] = True
    return AgentEvent(
        EventKind.USAGE, f"tokens: {k(usage.input_tokens)} in · {k(usage.output_tokens)} out{cost_text}", data
    )


def error_event(reason: str, **data: Any) -> AgentEvent:
    return AgentEvent(EventKind.ERROR, shorten(reason), {"error": reason[:MAX_DATA_CHARS], **data})


def api_error(message: str) -> str:
    """``API error 401: invalid api key`` from the many shapes CLIs wrap a provider error in.

    Understands ``[API Error: {"error":{"code":401,"message":...}}]`` (Gemini),
    ``[API Error: 401 msg]`` (Qwen), ``unexpected status 401 Unauthorized: msg, url: ...``
    (Codex) and plain ``401 msg``; anything else comes back shortened but unchanged.
    """
    text = message.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].strip()
    text = re.sub(r"^API Error:?\s*", "", text, flags=re.IGNORECASE)
    status: int | None = None
    brace = text.find("{")
    if brace >= 0:
        try:
            body, _ = json.JSONDecoder().raw_decode(text, brace)
        except (ValueError, RecursionError):
            body = None
        error = as_dict(body).get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and as_str(error.get("message")):
            code = error.get("code")
            status = code if isinstance(code, int) else int(str(code)) if str(code).isdigit() else None
            text = text[:brace] + str(error["message"])
        elif isinstance(error, str) and error:
            text = text[:brace] + error
    text = re.sub(r"^unexpected status\s+", "", text, flags=re.IGNORECASE)
    text = re.sub(r",\s*url:\s*\S+\s*$", "", text)
    match = _API_STATUS.match(text.strip())
    if match:
        status = int(match.group(1))
        text = text.strip()[3:]
        text = re.sub(r"^\s*(Unauthorized|Internal Server Error|Forbidden|Not Found|Too Many Requests)\b", "", text)
    detail = shorten(text.strip(" :-"), 300)
    if status is None:
        found = _API_STATUS.search(message)
        if found is None or not re.search(r"api|status|http", message, re.IGNORECASE):
            return detail or shorten(message, 300)
        status = int(found.group(1))
    label = f"API error {status}"
    return f"{label}: {detail}" if detail else label


def key_hint(reason: str, key_var: str) -> str:
    """``reason`` with `` · check KEY_VAR`` when it is an authentication error (HTTP 401)."""
    if reason.startswith("API error 401") and key_var not in reason:
        return f"{reason} · check {key_var}"
    return reason


def no_result_reason(exit_code: int, what: str = "a result") -> str:
    if exit_code < 0:
        import signal  # only on this rare path: keeps the runner's start-up lean

        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"agent was killed by {name} before reporting {what}"
    if exit_code == 0:
        return f"agent exited with code 0 without reporting {what}"
    return f"agent exited with code {exit_code} before reporting {what}"


def stderr_summary(stderr_tail: str, keep: int = 3) -> str:
    lines = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    return shorten(" | ".join(lines[-keep:]), 500) if lines else ""


def relative(path: str, cwd: str | None) -> str:
    """``hello.txt`` for ``/work/repo/hello.txt`` when the run's cwd is ``/work/repo``."""
    if cwd and os.path.isabs(path):
        rel = os.path.relpath(path, cwd)
        if not rel.startswith(".."):
            return rel
    return path


def tool_target(tool_input: dict[str, Any]) -> str | None:
    for key in (
        "file_path",
        "notebook_path",
        "filePath",
        "absolute_path",
        "path",
        "pattern",
        "url",
        "query",
        "description",
    ):
        value = as_str(tool_input.get(key))
        if value:
            return value
    return None


def describe_tool(name: str, tool_input: dict[str, Any], cwd: str | None) -> str:
    """``write hello.txt``, ``bash: npm test``: what a person watching wants to read."""
    command = as_str(tool_input.get("command")) or as_str(tool_input.get("cmd"))
    if command:
        return shorten(f"{name}: {command}")
    target = tool_target(tool_input)
    return shorten(f"{name} {relative(target, cwd)}") if target else name


def model_for_pricing(model: str | None) -> str | None:
    """``gpt-4.1-mini`` from ``openai/gpt-4.1-mini`` or ``custom:gpt-4.1-mini``: genai-prices' key."""
    if not model:
        return None
    name = model.removeprefix("custom:")
    return name.rsplit("/", 1)[-1] or None


def feed_json_line(line: str, dispatch: Callable[[dict[str, Any], str], list[AgentEvent]]) -> list[AgentEvent]:
    """The shared front of a JSON-lines parser: blank lines are nothing, anything that is not a
    JSON object (or that the parser chokes on) is a ``raw`` event, never an exception."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return []
    obj = load_json(line)
    if obj is None:
        return [raw_event(line)]
    try:
        return dispatch(obj, line)
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError):
        return [raw_event(line)]
