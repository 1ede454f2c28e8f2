"""The engine's side of remote tasks: launch them there, follow each one's events back, cancel them.

A running remote task has one follower: ``tail -F`` of its ``events.jsonl`` on the host, over the
master connection, from the size of the local copy on. Each line is appended to the local copy
(``tasks/ID/events.jsonl``, so the engine's replay reads it as a local task's) and ingested; the
store keeps each event once by its sequence number, so lines that also came live over the
forwarded socket are dropped. When the link drops, the follower reconnects and goes on from where
the local copy ends: a run that went on meanwhile loses nothing, and its result is recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import HostUnavailable
from core.files import TASK_INBOX, Outgoing, collect_outbox
from core.hosts import git, remote
from core.hosts.registry import Hosts
from core.launch import discard, write_launch
from core.models import TaskState
from core.protocol import (
    CANCEL_FILE,
    EVENTS_FILE,
    RESULT_FILE,
    SPEC_FILE,
    EventKind,
    event_record,
    failed_result,
    spec_cwd,
    task_dir,
)
from core.summary import git_root

if TYPE_CHECKING:
    from core.config import Config
    from core.engine.dispatch import Dispatcher, _Isolation
    from core.engine.recorder import Recorder
    from core.hosts.git import RemoteTree
    from core.hosts.ssh import SshHost
    from core.models import Task
    from core.store import Store

log = logging.getLogger(__name__)
_RETRY_MAX_S = 5.0
_IDLE_CHECK_S = 30.0  # how often a quiet follower checks that its task still runs


class RemoteTasks:
    """Launches, followers and cancels of the tasks that run on hosts; the engine owns one."""

    def __init__(
        self, config: Config, store: Store, home: Path, ingest: Callable[[dict[str, Any]], None], recorder: Recorder
    ) -> None:
        self.config = config
        self.store = store
        self.home = home
        self.hosts = Hosts(config, home)
        self.ingest = ingest
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._down: set[str] = set()  # hosts whose being down was logged (once until they are back)
        self.recorder = recorder
        recorder.bring_back = self.bring_back  # a remote branch comes back before the run's summary
        recorder.take_outbox = self.take_outbox  # and what its agent left for the chat
        self._checks: dict[str, asyncio.Task[None]] = {}

    # -- launch ---------------------------------------------------------------------------------
    def launch(
        self, dispatcher: Dispatcher, task: Task, text: str, isolation: _Isolation | None
    ) -> tuple[str, RemoteTree | None]:
        """Write the task's files on its host (its worktree there, with ``isolation``) and open its window
        there; the window's id and the worktree. Off the loop: it touches no store."""
        host = self.hosts.of(task)
        if self.config.agents[task.agent].sandbox == "bwrap":
            raise HostUnavailable(f"host {host.name}: `sandbox: bwrap` runs only on this machine")
        host.connect()
        data = host.data_dir()
        workdir, tree = f"{data}/work/{task.id}", None
        root = git_root(task.cwd) if isolation is not None else None
        if isolation is not None and root is not None:
            tree = git.prepare(host, Path(root), isolation.owner, task.text, isolation.base, isolation.branch)
            inside = os.path.relpath(task.cwd, root)
            workdir = tree.path if inside == "." else f"{tree.path}/{inside}"
        spec, files, env = dispatcher.spec(dataclasses.replace(task, cwd=workdir), text)

        def there(value: str) -> str:
            return remote.localize(value, host, self.home)

        spec = dataclasses.replace(
            spec,
            argv=tuple(there(a) for a in spec.argv),
            env={k: there(v) for k, v in spec.env.items()},
            state_paths=tuple(there(p) for p in spec.state_paths),
            socket=f"{data}/run/engine.sock",
            site_paths=(),
        )
        directory = task_dir(self.home, task.id)
        directory.mkdir(parents=True, exist_ok=True)
        clean = dispatcher.redactor.text(text)
        spec_json = spec.redacted(dispatcher.redactor.value).to_json()
        (directory / SPEC_FILE).write_text(spec_json, "utf-8")  # the local copy, for a person reading it
        (directory / "task.md").write_text(clean, encoding="utf-8", errors="surrogateescape")
        remote_dir = remote.remote_task_dir(host, task.id)
        write_launch(
            str(directory),
            mode=spec.prompt_mode,
            task_file=f"{remote_dir}/task.md" if clean == text else "",
            marker=spec.task_file_marker,
            env=remote.remote_env(env, host, self.home),
            secrets=dispatcher.redactor.values,
            argv=list(spec.argv),
            text=text,
        )
        try:
            secret = (directory / "launch.bin").read_bytes()
        finally:
            discard(str(directory / "launch.bin"))  # it travels inside the connection, never kept here
        rel = f"tasks/{task.id}"
        out: dict[str, tuple[bytes | None, int]] = {
            f"{rel}/task.md": (clean.encode("utf-8", "surrogateescape"), 0o600),
            f"{rel}/{SPEC_FILE}": (spec_json.encode(), 0o600),
            f"{rel}/launch.bin": (secret, 0o600),
            f"{rel}/cwd": (workdir.encode(), 0o600),
        }
        out.update(self._inbox(directory, data, workdir, host))  # files a person sent with the task
        for path, content in files.items():  # the agent's config files (no secret in them)
            moved = there(path)
            if moved.startswith(data + "/"):
                out[moved[len(data) + 1 :]] = (there(content).encode(), 0o600)
        if tree is not None and root is not None:  # the summary's files: the branch's commits once it is back
            baseline = {"root": str(root), "base": tree.commit, "tip": tree.branch, "branch": tree.branch}
            baseline["base_name"] = tree.base
            (directory / "baseline.json").write_text(json.dumps(baseline), encoding="utf-8")
            dispatcher.recorder.baselines[task.id] = baseline
        return remote.start_task(host, task.id, out, workdir), tree

    @staticmethod
    def _inbox(directory: Path, data: str, workdir: str, host: SshHost) -> dict[str, tuple[bytes | None, int]]:
        """The task's received files as members of its launch's tar: ``<workdir>/.orchestra/inbox/`` there."""
        received = directory / TASK_INBOX
        if not received.is_dir():
            return {}
        sent = {p.name: p.read_bytes() for p in sorted(received.iterdir()) if p.is_file() and not p.is_symlink()}
        if not workdir.startswith(data + "/"):  # never so today: work/ and worktrees/ are in the data dir
            remote.put_files(host, workdir, sent)
            return {}
        return remote.agent_folder(sent, prefix=workdir[len(data) + 1 :] + "/")

    def take_outbox(self, task: Task) -> Outgoing:
        """What the agent left in its outbox on the host: brought into the task's folder here, then taken
        as a local run's is (``core.files.collect_outbox``); never raises, as that does not."""
        limits, folder = self.config.files, task_dir(self.home, task.id)
        workdir = spec_cwd(folder)
        if workdir is None or limits.outbox_max_files == 0:
            return Outgoing()
        staging = folder / "host"
        left: list[str] = []
        try:
            left = remote.fetch_outbox(
                self.hosts.of(task), workdir, staging, max_files=limits.outbox_max_files,
                max_bytes=limits.outbox_max_bytes(),
            )  # fmt: skip
        except (HostUnavailable, OSError, tarfile.TarError) as exc:
            log.warning("%s: could not bring its outbox from host %s: %s", task.id, task.host, exc)
            left = [f"the outbox on host {task.host} (it could not be fetched: {exc})"]
        got = collect_outbox(staging, folder, max_files=limits.outbox_max_files, max_bytes=limits.outbox_max_bytes())
        return Outgoing(got.files, (*got.skipped, *left))

    def bring_back(self, task: Task) -> None:
        """A remote task's branch, committed there and fetched here (its summary and Diff/Merge need it)."""
        root = git_root(task.cwd)
        if root is None or not task.worktree or not task.branch or not task.host:
            return
        path = task.worktree.split(":", 1)[1] if task.worktree.startswith(f"{task.host}:") else task.worktree
        git.bring_back(self.hosts.of(task), Path(root), path, task.branch, task.id, task.text)

    # -- following ------------------------------------------------------------------------------
    def follow(self, task_id: str, host: str) -> None:
        """Follow a running remote task's events (once; nothing outside a running event loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        current = self._followers.get(task_id)
        if current is not None and not current.done():
            return
        self._followers[task_id] = loop.create_task(self._follow(task_id, host))

    def settle(self, task: Task, grace: float = 0.0) -> None:
        """What the engine's reconcile and sweep do for a remote task: make sure it is followed, and in a
        sweep (``grace``) whether its window there is gone without a result (then it fails, once)."""
        assert task.host is not None
        self.follow(task.id, task.host)
        check = self._checks.get(task.id)
        if grace and (check is None or check.done()):
            with contextlib.suppress(RuntimeError):  # no loop: the next engine's sweep looks
                self._checks[task.id] = asyncio.get_running_loop().create_task(self._check(task, grace))

    async def _check(self, task: Task, grace: float) -> None:
        """End a remote task whose runner vanished there: no window, no result, for ``grace`` seconds."""
        host = self.hosts.of(task)
        for attempt in range(2):
            try:
                alive = task.id in await asyncio.to_thread(remote.windows, host)
                done = await asyncio.to_thread(remote.has_result, host, task.id)
            except HostUnavailable:
                return  # unreachable is not gone: the follower catches up when it is back
            if alive or done or not self._running(task.id):
                return
            if attempt == 0:
                await asyncio.sleep(grace)  # its result may be on its way through the follower
        reason = f"its runner on host {host.name} vanished without a result"
        log.warning("%s: %s", task.id, reason)
        for event in self.store.events(task.id, kinds=[EventKind.STARTED], limit=1):
            with contextlib.suppress(HostUnavailable):  # nothing else would ever stop what it left running
                await asyncio.to_thread(remote.kill_group, host, event["data"].get("pid"))
        self.recorder.finalize(task.id, failed_result(TaskState.FAILED.value, reason))

    async def stop(self) -> None:
        """Stop following; a task that has ended gets a second to finish its local copy of the events."""
        for check in self._checks.values():
            check.cancel()
        ending = [f for task_id, f in self._followers.items() if not f.done() and not self._running(task_id)]
        if ending:
            await asyncio.wait(ending, timeout=1.0)
        for follower in self._followers.values():
            follower.cancel()
        for follower in self._followers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await follower
        self._followers.clear()

    def _running(self, task_id: str) -> bool:
        return bool(self.store.task_field(task_id, "state") == TaskState.RUNNING)

    async def _follow(self, task_id: str, host_name: str) -> None:
        mirror = task_dir(self.home, task_id) / EVENTS_FILE
        delay = 0.2
        while self._running(task_id):
            try:
                host = self.hosts.get(host_name)
                await asyncio.to_thread(host.connect)
                offset = mirror.stat().st_size if mirror.exists() else 0
                argv = host.argv(remote.follow_line(host, task_id, offset))
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                    limit=64 * 1024 * 1024,
                )
            except (HostUnavailable, OSError) as exc:
                if host_name not in self._down:
                    self._down.add(host_name)
                    log.warning("%s: %s; its events come when it is back", task_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            if host_name in self._down:
                self._down.discard(host_name)
                log.warning("host %s is back: following %s from byte %d", host_name, task_id, offset)
            try:
                if await self._read(task_id, proc, mirror):
                    return
                host.forget()  # the stream ended without the result: the link may be down
            finally:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            delay = 0.2
            await asyncio.sleep(delay)

    async def _read(self, task_id: str, proc: asyncio.subprocess.Process, mirror: Path) -> bool:
        """Copy and ingest lines until the run's result (True) or the link drops (False)."""
        assert proc.stdout is not None
        mirror.parent.mkdir(parents=True, exist_ok=True)
        with open(mirror, "ab", buffering=0) as copy:  # noqa: ASYNC230 - a local append: microseconds
            while True:
                try:
                    line = await asyncio.wait_for(proc.stdout.readline(), _IDLE_CHECK_S)
                except TimeoutError:  # quiet: a task recorded by its socket event needs its follower no more
                    if not self._running(task_id):
                        return True
                    continue
                if not line.endswith(b"\n"):
                    return False  # the link dropped (a line cut short is read again from its start)
                copy.write(line)
                try:
                    record = event_record(json.loads(line))
                except ValueError:
                    record = None
                if record is None or record["task"] != task_id:
                    continue
                try:
                    self.ingest(record)
                except Exception:
                    log.exception("could not ingest %s's event %s", task_id, record["seq"])
                if record["kind"] == EventKind.RESULT:
                    _write_result(mirror.parent, record["data"])
                    return True

    # -- cancel -----------------------------------------------------------------------------------
    def on_event(self, task_id: str, kind: str, data: dict[str, Any]) -> None:
        """A runner there that tells its pid after its task was cancelled here (the cancel came while its
        window opened, before the runner could be signalled): cancelled now, off the loop."""
        if kind != EventKind.STARTED or not data.get("runner_pid"):
            return
        task = self.store.find_task(task_id)
        if task is None or not task.remote:
            return
        if task.state == TaskState.RUNNING and not (task_dir(self.home, task_id) / CANCEL_FILE).exists():
            return
        threading.Thread(target=cancel_remote, args=(self.hosts, self.store, task), daemon=True).start()

    def cancel(self, task: Task) -> bool:
        """Cancel a running remote task there; False when its runner is gone (or the host unreachable)."""
        return bool(cancel_remote(self.hosts, self.store, task))


def cancel_remote(hosts: Hosts, store: Store, task: Task) -> bool:
    """The cancel a runner understands, sent over SSH: the mark, then SIGTERM to the runner there."""
    pid = store.task_field(task.id, "runner_pid")
    try:
        return remote.cancel(hosts.of(task), task.id, int(pid) if pid else None)
    except HostUnavailable as exc:
        log.warning("could not cancel %s: %s", task.id, exc)
        return False


def _write_result(directory: Path, payload: dict[str, Any]) -> None:
    """The local copy of the run's result.json, whole or not at all."""
    path = directory / RESULT_FILE
    tmp = path.with_name(RESULT_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not keep %s: %s", path, exc)
