"""A fake model API on 127.0.0.1 that the real agent CLIs talk to in tests.

One threaded HTTP server speaks the four wire APIs the CLIs use (``reference/agent-clis.md``
section 8): Anthropic Messages (SSE or JSON), OpenAI Responses (SSE), OpenAI Chat Completions
(streamed or not) and Gemini ``generateContent`` / ``streamGenerateContent`` (SSE). It is
stateless and decides from each request body alone:

1. the last message carries a tool result -> the final text ``DONE: created hello.txt``;
2. a known write or shell tool is offered -> one call of it that writes ``hello.txt``;
3. no tools (aider, title generation) -> text; when the system prompt asks for edit blocks the
   text carries the edit that creates ``hello.txt`` and then the final text.

Every answer reports the same usage per call (``PROMPT_TOKENS`` input of which ``CACHED_TOKENS``
were cache reads, ``OUTPUT_TOKENS`` output of which ``REASONING_TOKENS`` reasoning), written in
each protocol's own semantics, so a test can compute what a CLI must report from ``calls``.
``mode`` turns every model call into an HTTP 401 or 500 with a JSON error body.

Run it alone to drive a CLI by hand: ``python tests/fakes/model_server.py --port 8765``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

PROMPT_TOKENS = 1000  # total input per call, cache reads included
CACHED_TOKENS = 200
OUTPUT_TOKENS = 50  # total output per call, reasoning included
REASONING_TOKENS = 10
FILE_NAME = "hello.txt"
FILE_CONTENT = "hello\n"
FINAL_TEXT = f"DONE: created {FILE_NAME}"
SCRIPT_DONE = "DONE: ran the script"
STEPS_DONE = "DONE: took every step"
ERROR_MESSAGES = {401: "invalid api key (fake server)", 500: "internal error (fake server)"}

Mode = Literal["ok", "401", "500"]
Protocol = Literal["anthropic", "responses", "chat", "gemini"]

_MAX_BODY = 32 * 1024 * 1024
_MAX_LOG = 500
_WRITE_TOOLS = ("Write", "write_file", "write", "Create", "create")  # create: Copilot CLI's
_SHELL_TOOLS = ("exec_command", "Bash", "run_shell_command", "bash", "Execute", "shell")


@dataclass
class Call:
    """One request the server answered (model calls and everything else)."""

    method: str
    path: str
    protocol: Protocol | None
    model: str | None
    status: int
    reply: str  # "tool:<name>", "final", "text", "edit", "error" or "other"
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


class FakeModelServer:
    """Start with ``with FakeModelServer() as server:``; ``server.url`` is ``http://127.0.0.1:PORT``.

        ``workdir`` is where the file should be written (some tools need an absolute path); ``mode``
        can be changed between runs. With ``escape_to`` the model is hostile: it only asks the shell
        tool to ``touch`` that path, outside the workspace, to see whether the CLI's policy binds it.
        With ``script`` the model runs those shell commands one per turn (the permission tests: an allowed
    ``pytest``, an asked ``curl``, a denied ``rm -rf /``). The server thread stops when the ``with`` block ends.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        workdir: str = "/tmp",
        mode: Mode = "ok",
        model: str | None = None,
        escape_to: str | None = None,
        careless: bool = False,
        script: list[str] | None = None,
        steps: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.workdir = workdir
        # Tool calls the model makes one per turn, in order (when the CLI offers the tool); then it
        # ends with STEPS_DONE. The questions tests: ``AskUserQuestion``, a slow ``Bash`` to steer.
        self.steps = list(steps) if steps is not None else None
        # Shell commands the model runs one per turn, in order, whatever else is offered; then it ends
        # with SCRIPT_DONE. What each command printed is in the next request's body (``calls``).
        self.script = list(script) if script is not None else None
        self.careless = careless  # the model leaves out arguments a tool requires (droid's riskLevel)
        self.escape_to = escape_to  # a path outside the workspace: the model only ever asks a shell to touch it
        self.mode: Mode = mode
        self.model = model  # reported in replies; None echoes the model the client asked for
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def model_calls(self, protocol: Protocol | None = None) -> list[Call]:
        """Model calls answered with 200, optionally of one protocol."""
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if c.protocol and c.status == 200 and (protocol is None or c.protocol == protocol)]

    def decide(self, *, tool_result: bool, tools: list[str], system: str, results: int) -> Decision:
        """This server's turn for one request (``decide`` with the server's workdir, script and moods)."""
        if self.steps is not None:
            if not tools:
                return Decision("text", text="a side call")
            if results < len(self.steps) and self.steps[results][0] in tools:
                return Decision("tool", *self.steps[results])
            return Decision("final", text=STEPS_DONE)
        return decide(
            tool_result=tool_result, tools=tools, system=system, workdir=self.workdir, escape_to=self.escape_to,
            careless=self.careless, script=self.script, results=results,
        )  # fmt: skip

    def record(self, call: Call) -> None:
        with self._lock:
            if len(self.calls) < _MAX_LOG:
                self.calls.append(call)


# -- decisions ----------------------------------------------------------------------------------


@dataclass
class Decision:
    kind: Literal["tool", "final", "text", "edit"]
    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    text: str = ""


def decide(
    *,
    tool_result: bool,
    tools: list[str],
    system: str,
    workdir: str,
    escape_to: str | None = None,
    careless: bool = False,
    script: list[str] | None = None,
    results: int = 0,
) -> Decision:
    """The scripted turn for one request, from the request alone (``results``: tool results so far)."""
    if script is not None:
        shell = next((name for name in _SHELL_TOOLS if name in tools), None)
        if shell is None or results >= len(script):
            return Decision("final" if shell else "text", text=SCRIPT_DONE if shell else "no shell tool was offered")
        step: dict[str, Any] = {"cmd" if shell == "exec_command" else "command": script[results]}
        if shell == "Execute":
            step |= {"riskLevelReason": "Runs the step the task asked for.", "riskLevel": "low"}
        return Decision("tool", shell, step)
    if tool_result:
        return Decision("final", text=FINAL_TEXT)
    if escape_to is not None:
        shell = next((name for name in _SHELL_TOOLS if name in tools), None)
        if shell is None:
            return Decision("text", text="no shell tool was offered")
        return Decision("tool", shell, {"cmd" if shell == "exec_command" else "command": f"touch {escape_to}"})
    path = f"{workdir.rstrip('/')}/{FILE_NAME}"
    for name in _WRITE_TOOLS:
        if name in tools:
            if name == "create":
                return Decision("tool", name, {"path": path, "file_text": FILE_CONTENT})
            key = "filePath" if name == "write" else "file_path"
            return Decision("tool", name, {key: path, "content": FILE_CONTENT})
    for name in _SHELL_TOOLS:
        if name in tools:
            command = f"printf 'hello\\n' > {FILE_NAME}"
            key = "cmd" if name == "exec_command" else "command"
            arguments: dict[str, Any] = {key: command}
            if name == "Execute" and not careless:  # droid refuses a command without its risk rating
                arguments |= {"riskLevelReason": "Writes one small file in the workspace.", "riskLevel": "low"}
            return Decision("tool", name, arguments)
    if "SEARCH" in system and "REPLACE" in system:
        edit = f"{FILE_NAME}\n```\n<<<<<<< SEARCH\n=======\n{FILE_CONTENT}>>>>>>> REPLACE\n```\n"
        return Decision("edit", text=f"I will create {FILE_NAME}.\n\n{edit}\n{FINAL_TEXT}")
    if "file listing" in system.lower():  # aider's "whole" edit format
        return Decision(
            "edit", text=f"I will create {FILE_NAME}.\n\n{FILE_NAME}\n```\n{FILE_CONTENT}```\n\n{FINAL_TEXT}"
        )
    return Decision("text", text="Create hello.txt")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


# -- protocols: each returns (status, content type, body chunks) ---------------------------------

Reply = tuple[int, str, Iterator[bytes] | bytes, str]


def _sse(events: list[tuple[str | None, dict[str, Any] | str]]) -> Iterator[bytes]:
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {name}\n" if name else ""
        yield f"{head}data: {payload}\n\n".encode()


def _id(prefix: str) -> str:
    return f"{prefix}{time.time_ns():x}"


def anthropic(body: dict[str, Any], server: FakeModelServer) -> Reply:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    tool_result = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    tools = [t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)]
    system = _text_of(body.get("system"))
    results = sum(
        1
        for m in messages
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_result"
    )
    d = server.decide(tool_result=tool_result, tools=tools, system=system, results=results)
    model = server.model or str(body.get("model") or "claude-fake")
    usage = {
        "input_tokens": PROMPT_TOKENS - CACHED_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": CACHED_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
    }
    if d.kind == "tool":
        block: dict[str, Any] = {"type": "tool_use", "id": _id("toolu_"), "name": d.tool, "input": d.arguments}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": d.text}
        stop = "end_turn"
    reply = f"tool:{d.tool}" if d.kind == "tool" else d.kind
    message = {"id": _id("msg_"), "type": "message", "role": "assistant", "model": model, "stop_reason": stop}
    if not body.get("stream"):
        full = {**message, "content": [block], "stop_sequence": None, "usage": usage}
        return 200, "application/json", json.dumps(full).encode(), reply
    start_block = {**block, "input": {}} if d.kind == "tool" else {"type": "text", "text": ""}
    delta = (
        {"type": "input_json_delta", "partial_json": json.dumps(d.arguments)}
        if d.kind == "tool"
        else {"type": "text_delta", "text": d.text}
    )
    events: list[tuple[str | None, dict[str, Any] | str]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}},
            },
        ),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start_block}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": OUTPUT_TOKENS}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return 200, "text/event-stream", _sse(events), reply


def _chat_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": PROMPT_TOKENS + OUTPUT_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
    }


def chat(body: dict[str, Any], server: FakeModelServer) -> Reply:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    tool_result = bool(messages) and messages[-1].get("role") == "tool"
    tools = [
        (t.get("function") or {}).get("name", "") if isinstance(t.get("function"), dict) else ""
        for t in body.get("tools") or []
        if isinstance(t, dict)
    ]
    system = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "system")
    d = server.decide(
        tool_result=tool_result, tools=tools, system=system, results=sum(1 for m in messages if m.get("role") == "tool")
    )
    model = server.model or str(body.get("model") or "fake-model")
    reply = f"tool:{d.tool}" if d.kind == "tool" else d.kind
    call = {
        "index": 0,
        "id": _id("call_"),
        "type": "function",
        "function": {"name": d.tool, "arguments": json.dumps(d.arguments)},
    }
    finish = "tool_calls" if d.kind == "tool" else "stop"
    base = {"id": _id("chatcmpl-"), "created": int(time.time()), "model": model}
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": None if d.kind == "tool" else d.text}
        if d.kind == "tool":
            message["tool_calls"] = [{k: v for k, v in call.items() if k != "index"}]
        full = {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": _chat_usage(),
        }
        return 200, "application/json", json.dumps(full).encode(), reply
    chunk = {**base, "object": "chat.completion.chunk"}
    delta: dict[str, Any] = {"tool_calls": [call]} if d.kind == "tool" else {"content": d.text}
    events: list[tuple[str | None, dict[str, Any] | str]] = [
        (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        (None, {**chunk, "choices": [{"index": 0, "delta": delta}]}),
        (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}),
        (None, {**chunk, "choices": [], "usage": _chat_usage()}),
        (None, "[DONE]"),
    ]
    return 200, "text/event-stream", _sse(events), reply


def responses(body: dict[str, Any], server: FakeModelServer) -> Reply:
    items = [i for i in body.get("input") or [] if isinstance(i, dict)]
    tool_result = bool(items) and items[-1].get("type") == "function_call_output"
    tools = [str(t.get("name", "")) for t in body.get("tools") or [] if isinstance(t, dict)]
    tools += [  # a namespace's tools (Codex puts an MCP server's there) as NAMESPACE.TOOL
        f"{t.get('name')}.{inner.get('name')}"
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "namespace"
        for inner in t.get("tools") or []
        if isinstance(inner, dict)
    ]
    system = _text_of(body.get("instructions"))
    d = server.decide(
        tool_result=tool_result,
        tools=tools,
        system=system,
        results=sum(1 for i in items if i.get("type") == "function_call_output"),
    )
    model = server.model or str(body.get("model") or "fake-model")
    reply = f"tool:{d.tool}" if d.kind == "tool" else d.kind
    response_id = _id("resp_")
    if d.kind == "tool":
        item: dict[str, Any] = {
            "type": "function_call",
            "id": _id("fc_"),
            "call_id": _id("call_"),
            "name": d.tool.rpartition(".")[2],
            "arguments": json.dumps(d.arguments),
            "status": "completed",
        }
        if "." in d.tool:
            item["namespace"] = d.tool.rpartition(".")[0]
    else:
        item = {
            "type": "message",
            "id": _id("msg_"),
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": d.text, "annotations": []}],
        }
    usage = {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
        "total_tokens": PROMPT_TOKENS + OUTPUT_TOKENS,
    }
    response = {"id": response_id, "object": "response", "model": model, "created_at": int(time.time())}
    events: list[tuple[str | None, dict[str, Any] | str]] = [
        (
            "response.created",
            {"type": "response.created", "response": {**response, "status": "in_progress", "output": []}},
        ),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": item}),
    ]
    if d.kind != "tool":
        events.append(
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "item_id": item["id"],
                    "output_index": 0,
                    "content_index": 0,
                    "delta": d.text,
                },
            )
        )
    events += [
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
        (
            "response.completed",
            {
                "type": "response.completed",
                "response": {**response, "status": "completed", "output": [item], "usage": usage},
            },
        ),
    ]
    return 200, "text/event-stream", _sse(events), reply


def gemini(body: dict[str, Any], server: FakeModelServer, model: str, stream: bool) -> Reply:
    contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
    parts = contents[-1].get("parts") if contents else None
    tool_result = isinstance(parts, list) and any(isinstance(p, dict) and "functionResponse" in p for p in parts)
    tools = [
        str(f.get("name", ""))
        for t in body.get("tools") or []
        if isinstance(t, dict)
        for f in t.get("functionDeclarations") or []
        if isinstance(f, dict)
    ]
    instruction = body.get("systemInstruction")
    system = _text_of(instruction.get("parts")) if isinstance(instruction, dict) else ""
    d = server.decide(
        tool_result=tool_result,
        tools=tools,
        system=system,
        results=sum(
            1 for c in contents for p in c.get("parts") or [] if isinstance(p, dict) and "functionResponse" in p
        ),
    )
    reply = f"tool:{d.tool}" if d.kind == "tool" else d.kind
    part: dict[str, Any] = (
        {"functionCall": {"name": d.tool, "args": d.arguments}} if d.kind == "tool" else {"text": d.text}
    )
    chunk = {
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": PROMPT_TOKENS,
            "candidatesTokenCount": OUTPUT_TOKENS - REASONING_TOKENS,
            "thoughtsTokenCount": REASONING_TOKENS,
            "cachedContentTokenCount": CACHED_TOKENS,
            "totalTokenCount": PROMPT_TOKENS + OUTPUT_TOKENS,
        },
        "modelVersion": server.model or model,
        "responseId": _id("resp-"),
    }
    if not stream:
        return 200, "application/json", json.dumps(chunk).encode(), reply
    return 200, "text/event-stream", _sse([(None, chunk)]), reply


def error_body(protocol: Protocol, status: int) -> bytes:
    message = ERROR_MESSAGES.get(status, "error (fake server)")
    kind = "authentication_error" if status == 401 else "api_error"
    if protocol == "anthropic":
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    if protocol == "gemini":
        state = "UNAUTHENTICATED" if status == 401 else "INTERNAL"
        return json.dumps({"error": {"code": status, "message": message, "status": state}}).encode()
    return json.dumps({"error": {"message": message, "type": kind, "code": str(status)}}).encode()


_GEMINI_PATH = re.compile(r"^/(?:v1beta|v1)/models/([^/:]+):(streamGenerateContent|generateContent)$")


def _handler_for(server: FakeModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read ``calls``
            return

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path.endswith("/models"):
                model = server.model or "fake-model"
                self._send(200, "application/json", json.dumps({"object": "list", "data": [{"id": model}]}).encode())
                self._record(None, None, 200, "other")
                return
            self._send(404, "application/json", b'{"error":{"message":"not found"}}')
            self._record(None, None, 404, "other")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._send(413, "application/json", b'{"error":{"message":"too large"}}')
                return
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            path = self.path.split("?", 1)[0]
            protocol: Protocol | None = None
            gemini_match = _GEMINI_PATH.match(path)
            if path.endswith("/messages/count_tokens"):
                self._send(200, "application/json", json.dumps({"input_tokens": PROMPT_TOKENS}).encode())
                self._record(None, None, 200, "other")
                return
            if path.endswith("/messages"):
                protocol = "anthropic"
            elif path.endswith("/chat/completions"):
                protocol = "chat"
            elif path.endswith("/responses"):
                protocol = "responses"
            elif gemini_match:
                protocol = "gemini"
            if protocol is None:
                self._send(404, "application/json", b'{"error":{"message":"not found"}}')
                self._record(None, None, 404, "other")
                return
            model = gemini_match.group(1) if gemini_match else body.get("model")
            if server.mode != "ok":
                status = int(server.mode)
                self._send(status, "application/json", error_body(protocol, status))
                self._record(protocol, model, status, "error")
                return
            if protocol == "anthropic":
                reply = anthropic(body, server)
            elif protocol == "chat":
                reply = chat(body, server)
            elif protocol == "responses":
                reply = responses(body, server)
            else:
                assert gemini_match is not None
                reply = gemini(body, server, gemini_match.group(1), gemini_match.group(2).startswith("stream"))
            status, content_type, payload, what = reply
            self._record(protocol, model, status, what, body)
            if isinstance(payload, bytes):
                self._send(status, content_type, payload)
            else:
                self._stream(status, content_type, payload)

        def _record(
            self, protocol: Protocol | None, model: Any, status: int, reply: str, body: dict[str, Any] | None = None
        ) -> None:
            headers = {k.lower(): v for k, v in self.headers.items() if k.lower() in ("user-agent", "authorization")}
            call = Call(self.command, self.path, protocol, str(model) if model else None, status, reply, headers)
            call.body = body or {}
            server.record(call)

        def _send(self, status: int, content_type: str, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, status: int, content_type: str, chunks: Iterator[bytes]) -> None:
            data = b"".join(chunks)  # small: one write keeps clients that dislike chunking happy
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp")
    parser.add_argument("--mode", choices=["ok", "401", "500"], default="ok")
    parser.add_argument("--model", default=None)
    parser.add_argument("--seconds", type=float, default=600, help="stop after this long (bounded)")
    args = parser.parse_args()
    with FakeModelServer(args.port, workdir=args.workdir, mode=args.mode, model=args.model) as server:
        print(server.url, flush=True)
        deadline = time.monotonic() + args.seconds
        seen = 0
        while time.monotonic() < deadline:
            time.sleep(0.2)
            for call in server.calls[seen:]:
                print(f"{call.method} {call.path} {call.protocol} {call.model} {call.status} {call.reply}", flush=True)
            seen = len(server.calls)


if __name__ == "__main__":
    main()
