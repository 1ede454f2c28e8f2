"""Getting queued work moving: dispatch here, poke the running engine, or start one in the background."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from core.engine.lock import engine_running
from core.models import Task, TaskState
from core.protocol import ENGINE_SOCKET
from core.service.base import ServiceBase


class EngineControl(ServiceBase):
    """Where the Service meets the engine: this process's (``engine``), or another one over its socket."""

    def kick(self) -> None:
        """Get queued work moving: dispatch here if we are the engine, else wake the engine."""
        from core.protocol import kick_message

        if self.engine is not None and self.engine.owner:
            self.engine.dispatch()
            return
        from core.engine import poke  # the engine's socket client; asyncio comes with it

        if poke(self.home / ENGINE_SOCKET, kick_message()):
            return
        if self.autostart_engine and not engine_running(self.home):
            self.start_background_engine()

    def start_background_engine(self) -> None:
        """Run ``orchestra engine`` in a window of Orchestra's tmux server (it exits when idle)."""
        from core.launch import ENGINE_ENV, discard, write_engine_env

        argv = [sys.executable, "-m", "bot", "engine"]
        env = {k: v for k in ("PATH", "HOME", "ORCHESTRA_HOME", "ORCHESTRA_CONFIG") if (v := os.environ.get(k))}
        env["ORCHESTRA_HOME"] = str(self.home)
        if self.config_path is not None:  # the engine must read the same bots.yaml as we did
            env["ORCHESTRA_CONFIG"] = str(self.config_path.resolve())
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        # Its keys go in a mode-600 file it reads and deletes at once: tmux's command line and
        # environment (which every window inherits) never hold them.
        handoff = self.home / f"engine-env-{os.getpid()}-{time.monotonic_ns()}.bin"
        write_engine_env(str(handoff), self._engine_environment())
        env[ENGINE_ENV] = str(handoff)
        with contextlib.suppress(Exception):
            self.tmux.kill("_engine")
        try:
            self.tmux.start_window("_engine", argv, cwd=os.getcwd(), env=env)
        except BaseException:
            discard(str(handoff))
            raise
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (self.home / ENGINE_SOCKET).exists():
            time.sleep(0.02)
        if handoff.exists() and "_engine" not in self.tmux.windows():
            discard(str(handoff))  # the engine died before it could read it

    def _engine_environment(self) -> dict[str, str]:
        """What an engine reads of our environment: what its agents inherit (the allowlist and each
        agent's ``env_pass``) and every secret the config names (agents' ``env_from``, chat tokens)."""
        from core.agents.common import agent_env

        passed = agent_env(os.environ, [name for agent in self.config.agents.values() for name in agent.env_pass])
        sources = [source for agent in self.config.agents.values() for source in agent.env_from.values()]
        sources += [name for name in self.config.known_secrets() if name in os.environ]
        return {**passed, **{name: os.environ[name] for name in sources if name in os.environ}}

    def _settle_unattended(self, tasks: list[Task]) -> bool:
        """With no engine up, record the runs among ``tasks`` that ended meanwhile; True if any changed."""
        if not any(task.state == TaskState.RUNNING for task in tasks) or engine_running(self.home):
            return False  # nothing can have ended unseen, or the engine that runs records it: build none here
        if self.engine is None or not self.engine.settle_unattended(tasks):
            return False
        if self.store.queued_tasks():
            self.kick()  # a slot came free, or a task that never started went back in the queue
        return True

    def _ended(self, task_id: str) -> bool:
        """True once the task is no longer running; with no engine up, its runner's result is recorded here."""
        if self.engine is not None:
            return self.engine.record_result(task_id)
        return self.get(task_id).state != TaskState.RUNNING


__all__ = ["EngineControl"]
