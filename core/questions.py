"""An agent's question to a person: its shape, and how it rides the permission path.

A question an agent asks (Claude Code's ``AskUserQuestion``, the ``ask_owner`` tool Orchestra offers
other CLIs through MCP) is kept, sent, timed out, audited and answered like a permission request
(``core.engine.asks``): one row of ``permissions`` per question, with ``tool`` :data:`QUESTION`,
the question as ``subject`` and its options as JSON in ``detail``; the answer is the row's
``reason``. The hook asks one question at a time, so several questions reach the phone one after
another and each answer is final on its own.

Standard library only, and cheap to import: the hook (``python -S``) and the runner load it.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: the hook imports this on every tool call
if TYPE_CHECKING:
    from typing import Any

QUESTION = "Question"  # the ``tool`` of a permission row that is an agent's question
ASK_USER_QUESTION = "AskUserQuestion"  # Claude Code's tool
ASK_OWNER = "ask_owner"  # the MCP tool Orchestra offers the other CLIs
# How a CLI's hook names it, measured: Codex 0.169 and Qwen Code 0.24 (a deferred tool, called
# through ``tool_call``, reaches the hook under its own name); Gemini CLI 0.61; opencode 1.18;
# Copilot CLI 1.0.
ASK_OWNER_CALLS = frozenset(
    {"mcp__orchestra__ask_owner", "mcp_orchestra_ask_owner", "orchestra_ask_owner", "orchestra-ask_owner"}
)
MAX_QUESTIONS, MAX_OPTIONS = 4, 6
QUESTION_CHARS, LABEL_CHARS, DESCRIPTION_CHARS = 600, 60, 120  # a row keeps 1,500 characters of options
ANSWER_CHARS = 2000
UNANSWERED = (
    "No one answered your question in time. Do not wait for an answer: decide with your best judgement,"
    " and say in your final message what you assumed."
)
SKIPPED = "The person chose not to answer. Decide with your best judgement, and say what you assumed."


def _clip(text: Any, limit: int) -> str:
    value = text.strip() if isinstance(text, str) else ""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def question_list(tool_input: Any) -> list[dict[str, Any]]:
    """The questions of a tool call, each ``{"question", "header", "options": [{"label", "description"}],
    "multi"}``, sizes bounded; from ``AskUserQuestion``'s ``questions`` or ``ask_owner``'s one question."""
    data = tool_input if isinstance(tool_input, dict) else {}
    raw = data.get("questions")
    items = raw if isinstance(raw, list) else [data]
    questions = []
    for item in items[:MAX_QUESTIONS]:
        if not isinstance(item, dict):
            continue
        text = _clip(item.get("question"), QUESTION_CHARS)
        if not text:
            continue
        options = []
        for option in item.get("options") or []:
            label = option.get("label") if isinstance(option, dict) else option
            description = option.get("description") if isinstance(option, dict) else ""
            if _clip(label, LABEL_CHARS):
                options.append(
                    {"label": _clip(label, LABEL_CHARS), "description": _clip(description, DESCRIPTION_CHARS)}
                )
        multi = item.get("multiSelect") is True or item.get("multi") is True
        header = _clip(item.get("header"), LABEL_CHARS)
        questions.append({"question": text, "header": header, "options": options[:MAX_OPTIONS], "multi": multi})
    return questions


def question_detail(question: dict[str, Any]) -> str:
    """What a question's row keeps in ``detail``: its options and header, as JSON."""
    return json.dumps(
        {"header": question.get("header", ""), "options": question.get("options", []), "multi": question.get("multi")},
        ensure_ascii=False,
    )


def options_of(detail: str) -> tuple[list[dict[str, str]], bool, str]:
    """The options, whether several may be picked, and the header, from a question row's ``detail``."""
    try:
        data = json.loads(detail) if detail else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    options = [o for o in data.get("options") or [] if isinstance(o, dict) and isinstance(o.get("label"), str)]
    return options, data.get("multi") is True, str(data.get("header") or "")


def claude_answers(tool_input: dict[str, Any], answers: dict[str, str]) -> dict[str, Any]:
    """``AskUserQuestion``'s input with the person's ``answers`` (question text -> answer), which Claude
    Code accepts as the hook's ``updatedInput`` and hands the model as the tool's result (measured on 2.1.332)."""
    return {**tool_input, "answers": dict(answers)}
