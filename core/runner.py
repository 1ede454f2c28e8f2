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
import errno
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.agents import parser_for
from core.agents.base import AgentEvent, AgentResult, OutputParser, Usage
from core.agents.common import model_for_pricing
from core.redact import Redactor, StreamRedactor

_READ_CHUNK = 65536
_STDERR_TAIL = 4000
_DRAIN_S = 2.0  # after the agent exits, how long its background children may hold its output open
_MAX_WAIT_S = 1.0  # the longest the pump sleeps between checks
_CHATTY = frozenset({"text", "raw", "tool_use", "tool_result"})  # dropped once the log or the events are capped
_HELD_EVERY_S = 1.0  # past a cap, other events are kept at most this often per kind (the latest at the end)
_UNWRITTEN_MAX = 16 * 1024 * 1024  # events.jsonl bytes held in memory while the disk is full
_RESULT_RETRY_S = 600.0  # how long a result the disk refused is retried before the runner gives up


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
    """Sees one agent run to its end.

    ``secrets`` (every secret the engine knows of, from the launch handoff) never reach a file the
    runner writes: ``output.log``, ``stderr.log`` (copied from ``stderr_fd`` as it arrives),
    ``events.jsonl`` and ``result.json``. ``stdin_text`` is what an agent of prompt mode stdin reads.
    """

    def __init__(
        self,
        task_dir: Path | str,
        *,
        secrets: list[bytes] | None = None,
        stdin_text: bytes | None = None,
        stderr_fd: int | None = None,
    ) -> None:
        self.dir = Path(task_dir)
        self.spec: dict[str, Any] = json.loads((self.dir / "spec.json").read_text(encoding="utf-8"))
        self.task_id: str = self.spec["task_id"]
        self.parser: OutputParser = parser_for(self.spec["parser"], resumed_from=self.spec.get("resumed_from"))
        self.link = _Link(self.spec["socket"])
        self.events_file = open(self.dir / "events.jsonl", "ab", buffering=0)  # noqa: SIM115
        # Unbuffered: ``orchestra logs`` and ``/log`` read the file while the agent runs.
        self.log_file = open(self.dir / "output.log", "ab", buffering=0)  # noqa: SIM115
        self.log_max = int(self.spec.get("log_max_bytes") or 0)
        # Agents print their own keys at times (a 401 quoting the key): nothing we keep holds them.
        self.redactor = Redactor.of(v.decode("utf-8", "surrogateescape") for v in secrets or [])
        self.stdin_text = stdin_text
        self._stderr: threading.Thread | None = None
        if stderr_fd is not None:
            self._stderr = threading.Thread(target=self._copy_stderr, args=(stderr_fd,), daemon=True)
            self._stderr.start()
        self.log_written = 0
        self.events_max = int(self.spec.get("events_max_bytes") or 0)
        self.events_written = 0
        self.events_dropped = 0
        self._kept_at: dict[str, float] = {}  # past a cap: when each kind was last kept
        self._held: dict[str, tuple[str, dict[str, Any]]] = {}  # past a cap: the latest not yet kept
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
        self._unwritten = bytearray()  # events.jsonl bytes a failed write (a full disk) left for later
        self._write_failures: set[str] = set()  # files a write failed on, each told once in the pane

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
        line = self.redactor.data((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "replace"))
        self._append_events(line)
        self.events_written += len(line)
        self.link.send(line, force=force)

    def _admit(self, kind: str, text: str, data: dict[str, Any]) -> bool:
        """Whether to keep an agent event; what ``events.jsonl`` and the store hold stays bounded.

        Past ``events_max_bytes`` (or the log cap) output events are dropped and counted; the
        others (usage, cost, errors, ...) are kept at most once a second per kind, and the latest
        one held back is written at the end, so the final usage and cost are never lost.
        """
        over_log = bool(self.log_max) and self.log_written > self.log_max
        if not over_log and not (self.events_max and self.events_written > self.events_max):
            return True
        if kind in _CHATTY:
            self.events_dropped += 1
            return False
        now = time.monotonic()
        if now - self._kept_at.get(kind, -_HELD_EVERY_S) >= _HELD_EVERY_S:
            self._kept_at[kind] = now
            self._held.pop(kind, None)
            return True
        if kind in self._held:
            self.events_dropped += 1  # superseded by this one
        self._held[kind] = (text, data)
        return False

    def _flush_held(self) -> None:
        for kind, (text, data) in self._held.items():
            self.emit(kind, text, data)
        self._held.clear()
        if self.events_dropped:
            caps = "limits.events_max_bytes or log_max_bytes"
            note = f"{self.events_dropped} events dropped past the cap ({caps}); output.log has the text"
            self.emit("notice", note, {"events_dropped": self.events_dropped})
            sys.stdout.write(f"orchestra {self.task_id}: {note}\n")

    def _append_events(self, line: bytes) -> None:
        """Append to events.jsonl; what a full disk refuses waits in memory (bounded) for the next try.

        The engine has each event over the socket already; the file catches up once there is space.
        """
        if len(self._unwritten) + len(line) <= _UNWRITTEN_MAX:
            self._unwritten += line
        while self._unwritten:
            try:
                written = self.events_file.write(self._unwritten) or 0
            except OSError as exc:
                self._write_failed("events.jsonl", exc)
                return
            del self._unwritten[:written]

    def _write_failed(self, name: str, exc: OSError) -> None:
        if name not in self._write_failures:
            self._write_failures.add(name)
            reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
            self._say(f"orchestra {self.task_id}: cannot write {name} ({reason}); the run goes on\n")

    def _say(self, text: str) -> None:
        with contextlib.suppress(OSError):  # the pane can be gone too (its tmux server stopped)
            sys.stdout.write(text)
            sys.stdout.flush()

    def show(self, event: AgentEvent) -> None:
        """The readable view in the pane, for a person who attaches."""
        if event.kind == "raw":
            return
        marker = {"init": "●", "text": "›", "tool_use": "⚙", "tool_result": "↳", "usage": "$", "error": "✗"}
        text = event.text.replace("\n", " ")[:300]
        if event.kind == "usage" and self.live_cost is not None:
            text = f"{text}  (≈ ${self.live_cost:.4f} so far)"
        self._say(f"{marker.get(event.kind, '·')} {text}\n")

    # -- signals --------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_reason is None:
            # SIGHUP is tmux closing the pane (its window or the whole server went), not a cancel.
            self.stop_reason = "hung_up" if signum == signal.SIGHUP else "cancelled"
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
        signal.signal(signal.SIGCHLD, self._on_child)
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
            text = self.stdin_text if self.stdin_text is not None else (self.dir / "task.md").read_bytes()
            threading.Thread(target=self._feed_stdin, args=(in_fd, text), daemon=True).start()
        exit_code = self._pump(out_fd, started)
        exited_at = time.time()
        self._stderr_done()
        stderr_tail = _tail(self.dir / "stderr.log", _STDERR_TAIL)
        result = self.parser.finish(exit_code, stderr_tail)
        result.exit_code = exit_code
        return self.finish(result, exited_at=exited_at)

    def _feed_stdin(self, fd: int, text: bytes) -> None:
        try:
            with open(fd, "wb", closefd=True) as pipe:
                pipe.write(text)
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
        """Read the agent's output until the run ends, enforcing timeout, cancel and cost cap.

        The run ends when the agent's own process has exited and its output is closed, or
        ``_DRAIN_S`` after it exited (at the deadline at the latest) if processes it left in the
        background keep the output open; the agent's exit decides the status. Whatever is still
        running below the runner then is stopped (``_stop_leftovers``).
        A stop (timeout, cancel, cost cap) signals the whole tree: SIGTERM, then SIGKILL after
        the grace, repeated on every pass so nothing forked meanwhile survives.
        """
        timeout = float(self.spec.get("timeout_s") or 0) or None
        deadline = started + timeout if timeout else None
        grace = float(self.spec.get("cancel_grace_s", 5))
        term_at: float | None = None
        exited_at: float | None = None
        sel = selectors.DefaultSelector()
        os.set_blocking(out_fd, False)
        sel.register(out_fd, selectors.EVENT_READ, "out")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        buffer = b""
        out_open = True
        while True:
            now = time.time()
            self._reap()
            if self.exit_code is not None and exited_at is None:
                exited_at = now
            past_deadline = deadline is not None and now >= deadline
            if self.stop_reason is None and past_deadline and exited_at is None:
                self.stop_reason = "timed_out"
            if self.stop_reason is not None and term_at is None:
                term_at = now
                self._signal_tree(signal.SIGTERM)
            elif term_at is not None and now >= term_at + grace:
                self._signal_tree(signal.SIGKILL)
            if exited_at is not None and (not out_open or past_deadline or now >= exited_at + _DRAIN_S):
                break
            # Every wait is bounded: SIGCHLD wakes us early, and no timeout can overflow select.
            wake_at = [now + _MAX_WAIT_S]
            if deadline is not None and self.stop_reason is None:
                wake_at.append(deadline)
            if term_at is not None and now < term_at + grace:
                wake_at.append(term_at + grace)
            if exited_at is not None:
                wake_at.append(exited_at + _DRAIN_S)
            for key, _ in sel.select(max(0.0, min(wake_at) - now)):
                if key.data == "wake":
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 64)
                    continue
                try:
                    chunk = os.read(out_fd, _READ_CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    out_open = False
                    sel.unregister(out_fd)  # a closed pipe leaves the selector: it would be ready forever
                    break
                buffer += chunk
                complete, newline, buffer = buffer.rpartition(b"\n")
                if newline:  # one write per read: the log is current without a syscall per line
                    self._log(complete + newline)
                    for line in complete.split(b"\n"):
                        self._line(line)
                if len(buffer) > 8 * 1024 * 1024:  # a line with no end: parse what we have
                    self._log(buffer)
                    self._line(buffer)
                    buffer = b""
        sel.close()
        if buffer:
            self._log(buffer)
            self._line(buffer)
        self._stop_leftovers(grace)
        os.close(out_fd)
        return self.exit_code if self.exit_code is not None else -1

    def _on_child(self, _signum: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"c")

    def _reap(self) -> None:
        """Collect every child that has ended: the agent, and the orphans we are subreaper for."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                if self.exit_code is None:
                    self.exit_code = -1  # not our child any more: nothing to wait for
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.exit_code = os.waitstatus_to_exitcode(status)

    def _signal_tree(self, sig: int) -> None:
        """Signal the agent's process group and every process below the runner, setsid'd or not."""
        if self.pid is not None and self.exit_code is None:  # until reaped, the group id is surely ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
        for pid in _descendants(os.getpid()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def _stop_leftovers(self, grace: float) -> None:
        """Stop what the agent left running: SIGTERM, then SIGKILL after ``grace``; bounded."""
        self._reap()
        left = _descendants(os.getpid())
        if not left:
            return
        sys.stdout.write(f"orchestra {self.task_id}: stopping {len(left)} process(es) the agent left running\n")
        sys.stdout.flush()
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            self._signal_tree(sig)
            until = time.monotonic() + wait
            while time.monotonic() < until:
                time.sleep(0.05)
                self._reap()
                if not _descendants(os.getpid()):
                    return
                if sig == signal.SIGKILL:
                    self._signal_tree(sig)  # whatever forked since the last pass

    def _log(self, chunk: bytes) -> None:
        """Append whole lines (so a secret is never split across two writes), redacted, up to the cap."""
        chunk = self.redactor.data(chunk)
        if self.log_max and self.log_written > self.log_max:
            return  # past the cap: the marker below is written once, so a full log always says it was capped
        if self.log_max and self.log_written + len(chunk) > self.log_max:
            chunk = chunk[: self.log_max - self.log_written] + b"\n[orchestra: log capped here]\n"
        try:
            self.log_file.write(chunk)
        except OSError as exc:
            self._write_failed("output.log", exc)  # a full disk: this output is lost from the log, not the run
        self.log_written += len(chunk)

    def _line(self, raw: bytes) -> None:
        line = self.redactor.data(raw).decode("utf-8", "replace").rstrip("\r")
        for event in self.parser.feed(line):
            if event.kind == "usage":
                self._update_cost()
            if event.kind == "tool_result" and event.data.get("is_error") is True and len(self.tool_errors) < 50:
                self.tool_errors.append(event.text)
            if event.kind == "error" and event.data.get("stop_run") and self.stop_reason is None:
                self.stop_reason, self.agent_error = "agent_error", str(event.data.get("error") or event.text)
            if not self._admit(event.kind, event.text, event.data):
                continue  # past a cap, output events would grow the store without bound
            self.show(event)
            self.emit(event.kind, event.text, event.data)

    def _copy_stderr(self, fd: int) -> None:
        """Copy the agent's stderr into ``stderr.log`` as it arrives, redacted before it is written."""
        stream = StreamRedactor(self.redactor)
        out = os.open(self.dir / "stderr.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while chunk := os.read(fd, _READ_CHUNK):
                os.write(out, stream.feed(chunk))
            os.write(out, stream.flush())
        except OSError:
            pass
        finally:
            os.close(out)
            os.close(fd)

    def _stderr_done(self) -> None:
        """Wait (briefly: a leftover child may hold stderr open) until the agent's stderr is in the file."""
        if self._stderr is not None:
            self._stderr.join(2.0)

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
        data = {"cost_usd": cost}
        if self._admit("cost", f"${cost:.4f} so far", data):
            self.emit("cost", f"${cost:.4f} so far", data)
        if cap is not None and cost > float(cap) and self.stop_reason is None:
            self.stop_reason = "over_budget"
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _write_result(self, payload: dict[str, Any]) -> bool:
        """Write result.json atomically; False (the old file untouched, no stray temp) if the disk refused."""
        tmp = self.dir / "result.json.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.dir / "result.json")
        except OSError as exc:
            self._write_failed("result.json", exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        return True

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
        status = {"hung_up": "failed"}.get(self.stop_reason or "", self.stop_reason) or result.status
        reasons = {
            "hung_up": _hang_up_reason() if self.stop_reason == "hung_up" else "",
            "cancelled": "cancelled by request",
            "timed_out": f"timed out after {self.spec.get('timeout_s')} s",
            "over_budget": f"stopped: cost ${self.live_cost or 0:.4f} crossed the cap ${self.spec.get('cost_cap_usd')}",
        }
        if self.stop_reason in reasons:
            result.errors.insert(0, reasons[self.stop_reason])
        self._flush_held()
        payload = {
            "task_id": self.task_id,
            "status": status,
            "result": result.to_dict(),
            "exited_at": exited_at,
            "written_at": time.time(),
            "live_cost_usd": self.live_cost,
            "log_bytes": self.log_written,
            "events_dropped": self.events_dropped,
        }
        payload = self.redactor.value(payload)
        written = self._write_result(payload)
        self.emit("result", status, payload, force=True)  # the engine can record it even if the disk cannot
        if not written:
            self._say(f"orchestra {self.task_id}: disk full; result.json is kept in memory and retried\n")
            deadline = time.monotonic() + _RESULT_RETRY_S
            while not written and time.monotonic() < deadline:
                time.sleep(0.5)
                written = self._write_result(payload)
                if self._unwritten:
                    self._append_events(b"")
        self.link.close()
        for fh in (self.log_file, self.events_file):
            with contextlib.suppress(OSError):
                fh.close()
        cost = f", ${result.cost_usd:.4f}" if result.cost_usd is not None else ""
        self._say(
            f"\norchestra {self.task_id}: {status}{cost}" + (f" — {result.errors[0]}" if result.errors else "") + "\n"
        )
        return 0 if written else 1


def _hang_up_reason(wait_s: float = 1.0) -> str:
    """Why the pane hung up: the tmux server stopped (its pid, from ``$TMUX``, exits), or only our window."""
    try:
        server_pid = int(os.environ.get("TMUX", "").split(",")[1])
    except (IndexError, ValueError):
        return "its tmux window was closed"
    deadline = time.time() + wait_s  # the server signals its panes before it exits
    while _running(server_pid):
        if time.time() >= deadline:
            return "its tmux window was closed"
        time.sleep(0.02)
    return "its tmux server stopped"


def _running(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie does not (a daemonised tmux server is not always reaped at once)."""
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                return fh.read().rsplit(b") ", 1)[1][:1] not in (b"Z", b"X")
        except FileNotFoundError:
            return False
        except (OSError, IndexError):
            pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _descendants(root: int) -> list[int]:
    """Every live process below ``root`` (from ``/proc``), parents before their children."""
    children = _children if os.path.exists(f"/proc/{root}/task/{root}/children") else _children_by_scan()
    found: list[int] = []
    todo = [root]
    while todo and len(found) < 100_000:
        kids = children(todo.pop())
        found += kids
        todo += kids
    return found


def _children(pid: int) -> list[int]:
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids += [int(k) for k in fh.read().split()]
        except (OSError, ValueError):
            continue
    return kids


def _children_by_scan() -> Callable[[int], list[int]]:
    """For kernels without ``/proc/PID/task/TID/children``: one pass over every ``/proc/PID/stat``."""
    by_parent: dict[int, list[int]] = {}
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        by_parent.setdefault(ppid, []).append(int(name))
    return lambda pid: by_parent.get(pid, [])


def _tail(path: Path, size: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
