"""The dispatcher: starts queued tasks within the limits, each in its own tmux window.

Claiming a task is a compare-and-set from ``queued`` in the store; its launch (the task's files,
its git worktree with ``limits.isolation: worktree``, the git baseline, the window: subprocesses)
runs in a worker thread inside a running loop, so the loop never waits for it. A launch that fails
ends the task as failed; it never hangs it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.agents import adapter_for
from core.agents.common import agent_env
from core.errors import HostDown
from core.files import OUTBOX_HINT, TASK_INBOX, prepare_workdir
from core.launch import discard_launch, write_launch
from core.messages import OutKind
from core.models import Task, TaskState
from core.notify import Notifier
from core.permissions.hook import TASK_DIR_ENV
from core.protocol import ENGINE_SOCKET, SPEC_FILE, EventKind, TaskSpec, task_dir
from core.summary import git_baseline, git_root
from core.tmux import TmuxManager, runner_argv

if TYPE_CHECKING:
    from core.agents.base import AgentSettings
    from core.clock import Clock
    from core.config import Config
    from core.engine.recorder import Recorder
    from core.engine.workers import Workers
    from core.hosts.follow import RemoteTasks
    from core.permissions.policy import Policy
    from core.store import Store

log = logging.getLogger(__name__)
HOST_RETRY_S = 10.0  # how long the tasks of a host found down wait before it is tried again
_TASK_FILE = "{task_file}"

Notify = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class _Isolation:
    """Where a launch's worktree comes from: the task's own id, or the first task of a retry chain's."""

    owner: str
    branch: str | None = None  # the branch to continue (a retry's), None: a new one
    base: str | None = None  # the branch to cut from (the project's ``base``), None: the checkout's current


@dataclass(frozen=True)
class _Launched:
    window_id: str
    worktree: str | None = None
    branch: str | None = None
    repo: Path | None = None  # the repository a new worktree was cut from: its spare is to be made again


class Dispatcher:
    """Claims queued tasks oldest first and opens their windows; the engine calls it while it owns the lock."""

    def __init__(
        self,
        config: Config,
        store: Store,
        tmux: TmuxManager,
        clock: Clock,
        home: Path,
        *,
        workers: Workers,
        recorder: Recorder,
        notify: Notify,
        remote: RemoteTasks,
    ) -> None:
        self.config = config
        self.store = store
        self.tmux = tmux
        self.clock = clock
        self.home = home
        self.workers = workers
        self.recorder = recorder
        self.notify = notify
        self.remote = remote  # tasks on other hosts: their launch and their followers
        self.redactor = store.redactor  # the store's: one set of known secrets for the files and the tables
        self.host_waits: dict[str, float] = {}  # hosts found down at a launch: their tasks wait until then

    def dispatch(self) -> list[str]:
        """Move plans on (``core.engine.plans``), follow ended tasks up with what was said to them
        (``core.engine.says``), then start queued tasks, oldest first, within the global and
        per-agent limits."""
        from core.engine.plans import advance_all
        from core.engine.says import release

        advance_all(self.config, self.store, self.clock, self.home)
        try:
            release(self.config, self.store, self.clock, self.home)
        except Exception:  # what was said stays waiting in the store, for the next dispatch
            log.exception("could not follow up what was said to ended tasks")
        running = self.store.list_tasks(states=[TaskState.RUNNING], limit=1_000_000)
        per_agent: dict[str, int] = {}
        per_host: dict[str, int] = {}
        for task in running:
            per_agent[task.agent] = per_agent.get(task.agent, 0) + 1
            per_host[task.host or ""] = per_host.get(task.host or "", 0) + 1
        slots = self.config.limits.max_concurrent - len(running)
        started: list[str] = []
        if slots <= 0:
            return started
        for task in self.store.queued_tasks():
            if slots <= 0:
                break
            agent = self.config.agents.get(task.agent)
            limit = agent.max_concurrent if agent else 1
            if per_agent.get(task.agent, 0) >= limit:
                continue  # this agent is full; later tasks for other agents may still go
            host = self.config.hosts.get(task.host or "") if task.remote else None
            if host is not None and per_host.get(task.host or "", 0) >= host.max_concurrent:
                continue  # this host is full
            if host is not None and self.host_waits.get(task.host or "", 0.0) > time.monotonic():
                continue  # this host was down a moment ago: the sweep tries it again
            if self._start(task):
                started.append(task.id)
                slots -= 1
                per_agent[task.agent] = per_agent.get(task.agent, 0) + 1
                per_host[task.host or ""] = per_host.get(task.host or "", 0) + 1
        return started

    def _start(self, task: Task) -> bool:
        """Claim a queued task and launch it (off the loop when there is one); False if not claimed."""
        now = self.clock.now()
        if not self.store.transition(task.id, [TaskState.QUEUED], TaskState.RUNNING, updated_at=now):
            return False
        # When the engine took it from the queue: metrics measure queue wait and dispatch latency from it.
        self.notify(task.id, EventKind.DISPATCHED, {"dispatched_at": now, "created_at": task.created_at})
        # As it was sent: known secrets put back for the agent (read here: the worker has no store).
        launch = partial(_outcome, partial(self._launch, isolation=self._isolation(task)), task, self._text(task))
        if self.workers.submit(task.id, launch, lambda outcome: self._launched(task, *outcome)):
            return True
        return self._launched(task, *launch())

    def _text(self, task: Task) -> str:
        """What the agent is told: the task, and for a plan's step what the steps it waits for did."""
        text = self.store.task_text(task.id)
        if (task_dir(self.home, task.id) / TASK_INBOX).is_dir():  # it was sent files: it may send some back
            text += f"\n{OUTBOX_HINT}"
        if not task.plan_id or not task.step_after:
            return text
        from core.engine.handoff import handoff

        return text + handoff(self.store, task)

    def _isolation(self, task: Task) -> _Isolation | None:
        """Whether the task gets a worktree, and whose: a retry or follow-up continues its parent's.

        A task of a project goes by the project's ``isolation`` and ``base``; any other by ``limits.isolation``.
        """
        project = self.config.projects.get(task.project) if task.project else None
        if (project.isolation if project is not None else self.config.limits.isolation) != "worktree":
            return None
        base = project.base if project is not None else None
        plan = self.store.find_plan(task.plan_id) if task.plan_id else None
        if plan is not None and plan.branch:
            base = plan.branch  # a step is cut from its plan's branch: it sees the steps merged before it
        parent = self.store.find_task(task.parent_id) if task.parent_id else None
        if parent is not None and parent.worktree:
            return _Isolation(Path(parent.worktree).name, parent.branch, base)
        return _Isolation(task.id, None, base)

    def _launch(self, task: Task, text: str, *, isolation: _Isolation | None = None) -> _Launched:
        """Make or reuse the task's worktree (with ``isolation``), write the task's files, take the git
        baseline and open its tmux window.

        Runs off the loop: it touches no store (another thread's connection is not ours to share).
        A task outside a git repository runs in its ``cwd`` as without isolation.
        """
        from core import worktrees

        if task.remote:  # on another host: its files (and its worktree) go there over SSH (``core.hosts``)
            window_id, remote_tree = self.remote.launch(self, task, text, isolation)
            return _Launched(window_id, remote_tree.ref, remote_tree.branch) if remote_tree else _Launched(window_id)
        tree = None
        if isolation is not None and (root := git_root(task.cwd)) is not None:
            tree = worktrees.prepare(
                root, isolation.owner, task.text, isolation.base, self.home, branch=isolation.branch
            )
            task = dataclasses.replace(task, cwd=tree.cwd_for(task.cwd))  # the agent, its policy and sandbox
        directory = task_dir(self.home, task.id)
        if (directory / TASK_INBOX).is_dir():  # files sent with the task: into the agent's .orchestra/inbox/
            prepare_workdir(task.cwd, directory)
        spec, files, env = self.spec(task, text)
        write_agent_files(files)
        directory.mkdir(parents=True, exist_ok=True)
        clean = self.redactor.text(text)
        (directory / "task.md").write_text(clean, encoding="utf-8", errors="surrogateescape")
        (directory / SPEC_FILE).write_text(spec.redacted(self.redactor.value).to_json(), "utf-8")
        write_launch(
            str(directory),
            mode=spec.prompt_mode,
            task_file=str(directory / "task.md") if clean == text else "",  # else the agent reads it from memory
            marker=spec.task_file_marker,
            env=env,
            secrets=self.redactor.values,
            argv=list(spec.argv),
            text=text,
        )
        (directory / "cwd").write_bytes(os.fsencode(task.cwd))  # the launcher enters it: tmux never sees it
        state = list(spec.state_paths)
        baseline = git_baseline(task.cwd, state_paths=state) if tree is None else tree.baseline(state_paths=state)
        (directory / "baseline.json").write_text(json.dumps(baseline), encoding="utf-8")
        self.recorder.baselines[task.id] = baseline
        # Only what the launcher itself needs: the agent's environment travels in launch.bin.
        window_env = {k: v for k in ("PATH", "HOME") if (v := os.environ.get(k))}
        window_id = self.tmux.start_window(task.id, runner_argv(directory), env=window_env)
        if tree is None:
            return _Launched(window_id)
        return _Launched(window_id, str(tree.path), tree.branch, None if tree.reused else tree.repo)

    def _launched(self, task: Task, launched: _Launched | None, error: BaseException | None) -> bool:
        """Back on the engine's thread: record the window, or end a task that could not start."""
        if error is not None or launched is None:
            discard_launch(str(task_dir(self.home, task.id)))  # no launcher will read its secrets
            if isinstance(error, HostDown) and task.host and self._wait_for_host(task, error):
                return False
            log.warning("could not start %s: %s", task.id, self.redactor.text(str(error)))
            self.recorder.fail_unstarted(task, f"could not start: {error}")
            return False
        self.store.update_task(task.id, window_id=launched.window_id)
        if task.remote and self.store.task_field(task.id, "state") != TaskState.RUNNING:
            self.remote.cancel(task)  # cancelled while its window opened there: its mark is there only now
            return False
        if task.remote and task.host:
            self.remote.follow(task.id, task.host)
        if launched.worktree:
            self.store.update_task(task.id, worktree=launched.worktree, branch=launched.branch)
        if launched.repo is not None and self.config.worktrees.spares:  # the next task takes a ready checkout
            self.workers.submit(f"spare-{task.id}", partial(_make_spare, launched.repo, self.home), lambda _: None)
        return True

    def _wait_for_host(self, task: Task, error: HostDown) -> bool:
        """A task whose host was down at its launch goes back to the queue (nothing is lost): it starts
        when the host is back, tried again at each sweep; the chats are told once. False if it ended."""
        if not self.store.transition(task.id, [TaskState.RUNNING], TaskState.QUEUED, updated_at=self.clock.now()):
            return False
        assert task.host is not None
        self.host_waits[task.host] = time.monotonic() + HOST_RETRY_S
        log.warning("%s waits for host %s: %s", task.id, task.host, error)
        text = f"⏳ {task.id} waits for host {task.host}: {error}. It starts when the host is back"
        text += f" (/cancel {task.id} drops it)."
        Notifier(self.config, self.store, self.clock).post(OutKind.ACK, f"{task.id}:host-wait", text, task_id=task.id)
        return True

    def spec(self, task: Task, text: str) -> tuple[TaskSpec, dict[str, str], dict[str, str]]:
        """The runner's spec, the agent's config files (no secret in them) and its whole environment.

        The environment is built, never inherited: the allowlisted part of ours (``agent_env``,
        plus the agent's ``env_pass`` names), the adapter's and the agent's ``env``, then its ``env_from``.
        """
        policy = self.policy(task)
        settings = dataclasses.replace(self.config.agent_settings(task.agent), policy=policy.to_dict())
        adapter = adapter_for(settings.kind)
        # {task_file} is the task file's path in the argv template only; typed in the task, it stays
        # text. The template's own becomes a marker of this launch that only the launcher replaces.
        shield, marker = (f"{{task_file-{secrets.token_hex(8)}}}" for _ in range(2))
        invocation = adapter.build(text.replace(_TASK_FILE, shield), settings, resume=self._resume_session(task))
        argv = [a.replace(_TASK_FILE, marker).replace(shield, _TASK_FILE) for a in settings.splice(invocation.argv)]
        passed = agent_env(os.environ, self.config.agents[task.agent].env_pass)
        env = {**passed, **invocation.env, **self.config.secret_env(task.agent)}
        if settings.hook:  # how the hook the CLI runs finds its task (and through it the policy and the engine)
            env[TASK_DIR_ENV] = str(task_dir(self.home, task.id))
        if self.config.agents[task.agent].sandbox == "bwrap":
            argv = _sandboxed(task, settings, self.home, argv, env, marker)
        spec = TaskSpec(
            task_id=task.id,
            agent=task.agent,
            argv=tuple(argv),
            task_file_marker=marker,
            env=invocation.env,
            prompt_mode=invocation.prompt_mode,
            parser=invocation.parser,
            state_paths=tuple(invocation.state_paths),
            cwd=task.cwd,
            timeout_s=task.timeout_s,
            cost_cap_usd=task.cost_cap_usd,
            cancel_grace_s=self.config.limits.cancel_grace_s,
            socket=str(self.home / ENGINE_SOCKET),
            log_max_bytes=self.config.limits.log_max_bytes,
            events_max_bytes=self.config.limits.events_max_bytes,
            site_paths=tuple(p for p in sys.path if p and "site-packages" in p),
            resumed_from=self._session_totals_before(task),
            configured_model=settings.model,  # priced instead when the model the CLI names has no price
            permissions=settings.policy if settings.hook else None,
        )
        return spec, invocation.files, env

    def policy(self, task: Task) -> Policy:
        """The permission policy a task's tool calls are judged by (its category's, agent's, global)."""
        return self.config.permission_policy(task.agent, task.category, task.cwd, self.store.permission_rules())

    def _resume_session(self, task: Task) -> str | None:
        return task.session_id if task.session_id and task.parent_id else None

    def _session_totals_before(self, task: Task) -> dict[str, Any] | None:
        """The session totals the last run of the resumed session reported ({} if none did)."""
        session = self._resume_session(task)
        if session is None:
            return None
        for run in self.store.session_runs(task.agent, session):
            totals = run.summary.get("session_totals")
            if run.id != task.id and isinstance(totals, dict):
                return totals
        return {}


def _sandboxed(
    task: Task, settings: AgentSettings, home: Path, argv: list[str], env: dict[str, str], marker: str
) -> list[str]:
    """``argv`` inside bubblewrap (``sandbox: bwrap``): what it may reach is ``core.sandbox``'s."""
    from core.sandbox import SandboxPaths, sandboxed, worktree_git_dirs

    paths = SandboxPaths(
        cwd=task.cwd,
        data_dir=str(home),
        task_dir=str(task_dir(home, task.id)),
        socket=str(home / ENGINE_SOCKET),
        config_dirs=(settings.config_dir,) if settings.config_dir else (),
        hook=bool(settings.hook),  # its hook asks the engine over the socket and reads the task's spec.json
        git_dirs=worktree_git_dirs(task.cwd),  # its own worktree: git commit works inside
    )
    return sandboxed(argv, paths, kind=settings.kind, env=env, task_file_marker=marker)


def _outcome(
    launch: Callable[[Task, str], _Launched], task: Task, text: str
) -> tuple[_Launched | None, BaseException | None]:
    """``launch(task, text)`` as a value: a start that fails ends the task, it never hangs it."""
    try:
        return launch(task, text), None
    except Exception as exc:  # noqa: BLE001
        return None, exc


def _make_spare(repo: Path, home: Path) -> None:
    """Make the repository's spare worktree if it has none (``core.worktrees``); never raises."""
    from core import worktrees

    try:
        worktrees.add_spare(repo, home, unless_one=True)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not make a spare worktree for %s: %s", repo, exc)


def write_agent_files(files: dict[str, str]) -> None:
    """Write an invocation's config files (no secrets in them), each replaced atomically.

    Agents of one name share their config dir, so two tasks starting at once may write the same
    file; writing a temporary file and renaming it means a CLI never reads a half-written one.
    """
    for name, content in files.items():
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.replace(tmp, path)
