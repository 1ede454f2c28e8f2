"""The engine package: dispatches queued tasks into tmux, listens to runners, records results.

``engine`` listens and reconciles, ``dispatch`` starts tasks, ``recorder`` records how they
ended, ``lock`` says which process is the engine, ``runners`` signals and watches the runners.
"""

from __future__ import annotations

from core.engine.dispatch import write_agent_files
from core.engine.engine import Engine, Listener, poke
from core.engine.lock import engine_running, lock_holder, signal_engine
from core.engine.runners import request_cancel, signal_runner

__all__ = [
    "Engine",
    "Listener",
    "engine_running",
    "lock_holder",
    "poke",
    "request_cancel",
    "signal_engine",
    "signal_runner",
    "write_agent_files",
]
