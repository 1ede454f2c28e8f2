"""What a Claude Code ``result`` line says beyond its fields: why a run failed, which tool calls
were denied, and the main model. Shared by the Claude parser and the Qwen Code one (same stream).

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import json
from typing import Any

from core.agents.common import as_dict, as_float, as_str, shorten, tool_target


def result_errors(result: dict[str, Any]) -> list[str]:
    """Readable reasons an ``is_error`` result gives, most specific first."""
    reasons: list[str] = []
    subtype = as_str(result.get("subtype")) or ""
    terminal = as_str(result.get("terminal_reason"))
    status = result.get("api_error_status")
    text = as_str(result.get("result")) or ""
    if status is not None or terminal == "api_error" or text.startswith("API Error"):
        reasons.append(_api_error(status, text))
    if subtype == "error_max_turns" or terminal == "max_turns":
        reasons.append("max turns reached")
    elif subtype == "error_max_budget_usd" or terminal == "budget_exhausted":
        reasons.append("budget exhausted (--max-budget-usd)")
    elif subtype == "error_during_execution":
        reasons.append("error during execution")
    elif subtype.startswith("error_"):
        reasons.append(subtype.removeprefix("error_").replace("_", " "))
    known = {None, "completed", "api_error", "max_turns", "budget_exhausted"}
    if terminal not in known:
        reasons.append(f"terminal reason: {terminal}")
    extra = result.get("errors")
    for item in extra if isinstance(extra, list) else []:
        message = item.get("message") if isinstance(item, dict) else item
        if isinstance(message, str) and message.strip() and message not in reasons:
            reasons.append(shorten(message, 500))
    if not reasons and text:
        reasons.append(shorten(text, 500))
    return reasons


def _api_error(status: Any, text: str) -> str:
    """``API error 401: invalid x-api-key`` from ``API Error: 401 {"type":"error",...}``."""
    detail = text
    lead, marker, after = detail.partition("API Error")
    if marker:  # "API Error: 401 ..." or "Failed to authenticate. API Error: 401 ...": say the status once
        detail = after.lstrip(": ")
        code, _, rest = detail.partition(" ")
        if code.isdigit():
            status = status if status is not None else int(code)
            detail = rest
    brace = detail.find("{")
    if brace >= 0:
        try:  # the JSON body is often followed by a hint such as " · Please run /login"
            body, _ = json.JSONDecoder().raw_decode(detail, brace)
        except (ValueError, RecursionError):
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str) and message:
            detail = message
    lead = lead.strip().rstrip(".:") if marker else ""
    detail = " · ".join(part for part in (lead, detail.strip()) if part)
    label = f"API error {status}" if status is not None else "API error"
    detail = shorten(detail, 300)
    return f"{label}: {detail}" if detail else label


def denials(raw: Any) -> list[str]:
    """``Write /abs/path`` for each denied call, in the order the CLI lists them."""
    denials: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        name = as_str(item.get("tool_name")) or "tool"
        tool_input = as_dict(item.get("tool_input"))
        target = as_str(tool_input.get("command")) if name == "Bash" else tool_target(tool_input)
        denials.append(f"{name} {target}" if target else name)
    return denials


def main_model(model_usage: Any) -> str | None:
    """The model that cost the most, when the stream never named one."""
    if not isinstance(model_usage, dict) or not model_usage:
        return None
    costs = {
        name: (as_float(stats.get("costUSD")) or 0.0) if isinstance(stats, dict) else 0.0
        for name, stats in model_usage.items()
    }
    return str(max(costs, key=lambda name: costs[name]))
