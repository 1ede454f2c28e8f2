"""The runner: the small program that runs inside a task's tmux pane.

It starts the agent from an argv vector (the task text is an argument, stdin or a file, never
shell input), writes the raw output to the task log, shows a readable view in the pane, turns
the output into events, tells the engine about each one at once over a Unix socket, keeps them
on disk too (``events.jsonl``), enforces the timeout and the cost cap, and always ends by writing
``result.json`` atomically. The engine can be down the whole time: it catches up from the files.

It imports only the standard library and the chosen parser, and is started with ``python -S``,
so it is running the agent a few milliseconds after tmux starts it.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.agents import parser_for
from core.agents.base import AgentEvent, AgentResult, OutputParser, Usage
from core.agents.common import model_for_pricing

_READ_CHUNK = 65536
_STDERR_TAIL = 4000
_REDACTED = b"[redacted]"
_CHATTY = frozenset({"text", "raw", "tool_use", "tool_result"})  # dropped once the log is capped


def _secrets_from_env(names: list[str]) -> list[bytes]:
    """The values of the agent's ``env_from`` variables (ours too: tmux gave them to this pane)."""
    values = {os.environ.get(name, "") for name in names}
    return sorted((v.encode() for v in values if len(v) >= 6), key=len, reverse=True)


def redact(data: bytes, secrets: list[bytes]) -> bytes:
    """``data`` with every secret value replaced; longest first, so a secret's prefix never survives."""
    for secret in secrets:
        if secret in data:
            data = data.replace(secret, _REDACTED)
    return data


class _Link:
    """A best-effort line-oriented connection to the engine; reconnects when it can."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock: socket.socket | None = None
        self._last_try = 0.0

    def send(self, line: bytes, *, force: bool = False) -> None:
        if self.sock is None:
            now = time.monotonic()
            if not force and now - self._last_try < 1.0:
                return
            self._last_try = now
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(2.0)
                sock.connect(self.path)
                self.sock = sock
            except OSError:
                return
        try:
            self.sock.sendall(line)
        except OSError:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None


class Runner:
    def __init__(self, task_dir: Path | str) -> None:
        self.dir = Path(task_dir)
        self.spec: dict[str, Any] = json.loads((self.dir / "spec.json").read_text(encoding="utf-8"))
        self.task_id: str = self.spec["task_id"]
        self.parser: OutputParser = parser_for(self.spec["parser"], resumed_from=self.spec.get("resumed_from"))
        self.link = _Link(self.spec["socket"])
        self.events_file = open(self.dir / "events.jsonl", "ab", buffering=0)  # noqa: SIM115
        self.log_file = open(self.dir / "output.log", "ab")  # noqa: SIM115
        self.log_max = int(self.spec.get("log_max_bytes") or 0)
        # Agents print their own keys at times (a 401 quoting the key): nothing we keep holds them.
        self.secrets = _secrets_from_env(list(self.spec.get("secret_env_names") or []))
        self.log_written = 0
        self.seq = 0
        self.stop_reason: str | None = None  # cancelled | timed_out | over_budget | agent_error
        self.agent_error = ""  # why the parser asked to stop the run (a 401 the CLI would retry for minutes)
        self.tool_errors: list[str] = []  # every parser reports a failed tool call as a tool_result is_error
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.live_cost: float | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._price_ready = threading.Event()
        self._price_started = False

    # -- events -------------------------------------------------------------------------
    def emit(self, kind: str, text: str = "", data: dict[str, Any] | None = None, *, force: bool = False) -> None:
        self.seq += 1
        record = {
            "t": "event",
            "task": self.task_id,
            "seq": self.seq,
            "ts": time.time(),
            "kind": kind,
            "text": text,
            "data": data or {},
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        self.events_file.write(line)
        self.link.send(line, force=force)

    def show(self, event: AgentEvent) -> None:
        """The readable view in the pane, for a person who attaches."""
        if event.kind == "raw":
            return
        marker = {"init": "●", "text": "›", "tool_use": "⚙", "tool_result": "↳", "usage": "$", "error": "✗"}
        text = event.text.replace("\n", " ")[:300]
        if event.kind == "usage" and self.live_cost is not None:
            text = f"{text}  (≈ ${self.live_cost:.4f} so far)"
        sys.stdout.write(f"{marker.get(event.kind, '·')} {text}\n")
        sys.stdout.flush()

    # -- signals --------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_reason is None:
            self.stop_reason = "cancelled"
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- main -----------------------------------------------------------------------------
    def failed_to_start(self, command: str, exc: OSError) -> int:
        self.emit("started", "agent failed to start", {"error": str(exc)}, force=True)
        reason = f"could not start {command}: {exc.strerror or exc}"
        return self.finish(AgentResult(status="failed", errors=[reason]), exited_at=time.time())

    def run(self, pid: int, out_fd: int, in_fd: int | None, started: float) -> int:
        """Take over an agent that ``core.launch`` already spawned, and see it to the end."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.pid = pid
        spec = self.spec
        if (self.dir / "cancel").exists():
            self._on_signal(signal.SIGTERM, None)  # cancelled before we were listening for signals
        self.emit(
            "started",
            f"{spec.get('agent', '')} started",
            {"pid": pid, "runner_pid": os.getpid(), "agent_started_at": started},
            force=True,
        )
        sys.stdout.write(f"orchestra {self.task_id}: {spec.get('agent', '')} running (pid {pid})\n")
        sys.stdout.flush()
        if in_fd is not None:
            text = (self.dir / "task.md").read_text(encoding="utf-8", errors="surrogateescape")
            threading.Thread(target=self._feed_stdin, args=(in_fd, text), daemon=True).start()
        exit_code = self._pump(out_fd, started)
        exited_at = time.time()
        self._redact_stderr()
        stderr_tail = _tail(self.dir / "stderr.log", _STDERR_TAIL)
        result = self.parser.finish(exit_code, stderr_tail)
        result.exit_code = exit_code
        return self.finish(result, exited_at=exited_at)

    def _feed_stdin(self, fd: int, text: str) -> None:
        try:
            with open(fd, "wb", closefd=True) as pipe:
                pipe.write(text.encode("utf-8", "surrogateescape"))
        except OSError:
            pass

    def _preload_pricing(self) -> None:
        for path in self.spec.get("site_paths", []):
            if path not in sys.path:
                sys.path.append(path)
        with contextlib.suppress(Exception):  # pricing is optional for the runner
            from core import pricing

            pricing.preload()
        self._price_ready.set()

    def _pump(self, out_fd: int, started: float) -> int:
        """Read the agent's stdout until it exits, enforcing timeout and cost cap."""
        timeout = float(self.spec.get("timeout_s") or 0) or None
        deadline = started + timeout if timeout else None
        grace = float(self.spec.get("cancel_grace_s", 5))
        kill_at: float | None = None
        sel = selectors.DefaultSelector()
        os.set_blocking(out_fd, False)
        sel.register(out_fd, selectors.EVENT_READ, "out")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        buffer = b""
        open_out = True
        while True:
            now = time.time()
            if self.stop_reason is None and deadline is not None and now >= deadline:
                self.stop_reason = "timed_out"
            if self.stop_reason is not None and kill_at is None:
                self._signal_agent(signal.SIGTERM)
                kill_at = now + grace
            if kill_at is not None and now >= kill_at:
                self._signal_agent(signal.SIGKILL)
                kill_at = float("inf")
            if not open_out:
                code = self._wait_exit(kill_at)
                if code is not None:
                    return code
                continue
            waits = [t - now for t in (deadline, kill_at) if t is not None and t != float("inf")]
            wait = max(0.0, min(waits)) if waits else None
            for key, _ in sel.select(wait):
                if key.data == "wake":
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 64)
                    continue
                try:
                    chunk = os.read(out_fd, _READ_CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    open_out = False
                    sel.unregister(out_fd)
                    if buffer:
                        self._log(buffer)
                        self._line(buffer)
                        buffer = b""
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self._log(line + b"\n")
                    self._line(line)
                if len(buffer) > 8 * 1024 * 1024:  # a line with no end: parse what we have
                    self._log(buffer)
                    self._line(buffer)
                    buffer = b""

    def _wait_exit(self, kill_at: float | None) -> int | None:
        # Bounded waits: a cancel can arrive while stdout is closed but the agent still runs.
        until = time.time() + 0.2
        if kill_at is not None and kill_at != float("inf"):
            until = min(until, kill_at)
        while True:
            code = self._poll()
            if code is not None or time.time() >= until:
                return code
            time.sleep(0.005)

    def _poll(self) -> int | None:
        if self.exit_code is None and self.pid is not None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return -1
            if done:
                self.exit_code = os.waitstatus_to_exitcode(status)
        return self.exit_code

    def _signal_agent(self, sig: int) -> None:
        if self.pid is None or self._poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _log(self, chunk: bytes) -> None:
        """Append whole lines (so a secret is never split across two writes), redacted, up to the cap."""
        chunk = redact(chunk, self.secrets)
        if self.log_max and self.log_written > self.log_max:
            return  # past the cap: the marker below is written once, so a full log always says it was capped
        if self.log_max and self.log_written + len(chunk) > self.log_max:
            chunk = chunk[: self.log_max - self.log_written] + b"\n[orchestra: log capped here]\n"
        self.log_file.write(chunk)
        self.log_written += len(chunk)

    def _line(self, raw: bytes) -> None:
        line = redact(raw, self.secrets).decode("utf-8", "replace").rstrip("\r")
        capped = bool(self.log_max) and self.log_written > self.log_max
        for event in self.parser.feed(line):
            if event.kind == "usage":
                self._update_cost()
            if event.kind == "tool_result" and event.data.get("is_error") is True and len(self.tool_errors) < 50:
                self.tool_errors.append(event.text)
            if event.kind == "error" and event.data.get("stop_run") and self.stop_reason is None:
                self.stop_reason, self.agent_error = "agent_error", str(event.data.get("error") or event.text)
            if capped and event.kind in _CHATTY:
                continue  # past the log cap, output events would grow the store without bound
            self.show(event)
            self.emit(event.kind, event.text, event.data)

    def _redact_stderr(self) -> None:
        """The agent wrote stderr.log itself: rewrite it without the secrets once it has exited."""
        path = self.dir / "stderr.log"
        if not self.secrets or not path.exists():
            return
        data = path.read_bytes()
        clean = redact(data, self.secrets)
        if clean != data:
            tmp = path.with_name("stderr.log.tmp")
            tmp.write_bytes(clean)
            os.replace(tmp, path)

    def _update_cost(self) -> None:
        cost = self.parser.live_cost_usd()
        if cost is None and not self._price_started:
            # Load the price table only for agents that report tokens, and off the reading path.
            self._price_started = True
            threading.Thread(target=self._preload_pricing, daemon=True).start()
        if cost is None and self._price_ready.is_set():
            usage, model = self.parser.live_usage()
            cost, _ = self._price(usage, model)
        if cost is None:
            return
        self.live_cost = cost
        cap = self.spec.get("cost_cap_usd")
        self.emit("cost", f"${cost:.4f} so far", {"cost_usd": cost})
        if cap is not None and cost > float(cap) and self.stop_reason is None:
            self.stop_reason = "over_budget"
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _price(self, usage: Usage, model: str | None) -> tuple[float | None, str]:
        """The list price of ``usage`` on the model the CLI named, else on the configured ``model:``.

        The note says when the configured model's price stood in (a CLI may name a model version
        that has no price, e.g. Gemini's ``modelVersion``).
        """
        try:
            from core import pricing

            cost = pricing.price_usd(usage, model)
            configured = model_for_pricing(self.spec.get("configured_model"))
            if cost is not None or not configured or configured == model_for_pricing(model):
                return cost, ""
            cost = pricing.price_usd(usage, configured)
        except Exception:  # noqa: BLE001 - pricing is optional for the runner
            return None, ""
        if cost is None:
            return None, ""
        return cost, f"priced as {configured}, the configured model: {model or 'the CLI named none'} has no price"

    def _counts_tokens(self) -> bool:
        """Whether the agent is a CLI whose output counts tokens (a ``command`` may spend unseen)."""
        return str(self.spec.get("parser", "")).split(" ")[0] != "command"

    def finish(self, result: AgentResult, *, exited_at: float) -> int:
        result.tool_errors = result.tool_errors or self.tool_errors
        if self.stop_reason == "agent_error":  # the one reason, not the "killed before a result" it led to
            self.stop_reason, result.status, result.errors = None, "failed", [self.agent_error]
        if result.cost_usd is None and (result.usage.input_tokens or result.usage.output_tokens):
            if not self._price_ready.is_set():
                self._preload_pricing()
            priced, note = self._price(result.usage, result.model)
            if priced is not None:
                result.cost_usd, result.cost_source, result.cost_note = priced, "priced", note
        elif result.cost_usd is None and result.status == "failed" and not self.stop_reason and self._counts_tokens():
            result.cost_usd, result.cost_source = 0.0, "priced"  # it failed before any model call: $0, known
        status = self.stop_reason or result.status
        reasons = {
            "cancelled": "cancelled by request",
            "timed_out": f"timed out after {self.spec.get('timeout_s')} s",
            "over_budget": f"stopped: cost ${self.live_cost or 0:.4f} crossed the cap ${self.spec.get('cost_cap_usd')}",
        }
        if self.stop_reason in reasons:
            result.errors.insert(0, reasons[self.stop_reason])
        payload = {
            "task_id": self.task_id,
            "status": status,
            "result": result.to_dict(),
            "exited_at": exited_at,
            "written_at": time.time(),
            "live_cost_usd": self.live_cost,
            "log_bytes": self.log_written,
        }
        tmp = self.dir / "result.json.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / "result.json")
        self.emit("result", status, payload, force=True)
        self.link.close()
        self.log_file.close()
        self.events_file.close()
        sys.stdout.write(f"\norchestra {self.task_id}: {status}")
        if result.cost_usd is not None:
            sys.stdout.write(f", ${result.cost_usd:.4f}")
        if result.errors:
            sys.stdout.write(f" — {result.errors[0]}")
        sys.stdout.write("\n")
        sys.stdout.flush()
        return 0


def _tail(path: Path, size: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
