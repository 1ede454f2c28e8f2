"""The engine package: dispatches queued tasks into tmux, listens to runners, records results.

``engine`` listens and reconciles, ``dispatch`` starts tasks, ``recorder`` records how they
ended, ``lock`` says which process is the engine, ``runners`` signals and watches the runners.
Each name loads its module on first use: a reader that only asks the lock (``orchestra status``,
``health``) never imports asyncio or libtmux.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_attributes

if TYPE_CHECKING:
    from core.engine.dispatch import write_agent_files
    from core.engine.engine import Engine, Listener
    from core.engine.lock import engine_running, lock_holder, poke, signal_engine
    from core.engine.runners import request_cancel, signal_runner

_MODULES = {
    "write_agent_files": "core.engine.dispatch",
    "Engine": "core.engine.engine",
    "Listener": "core.engine.engine",
    "poke": "core.engine.lock",
    "engine_running": "core.engine.lock",
    "lock_holder": "core.engine.lock",
    "signal_engine": "core.engine.lock",
    "request_cancel": "core.engine.runners",
    "signal_runner": "core.engine.runners",
}


__getattr__ = lazy_attributes(__name__, _MODULES)


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
