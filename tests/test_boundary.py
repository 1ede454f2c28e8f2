"""core/ never imports a chat SDK: only neutral types cross into the engine."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "core"
BANNED = ("telegram", "slack_bolt", "slack_sdk", "bot")


def test_core_imports_no_chat_sdk() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in BANNED]
    assert offenders == []


def test_runner_and_parsers_import_only_stdlib() -> None:
    """The runner starts with `python -S`: no site-packages at import time."""
    import subprocess
    import sys

    modules = "core.launch, core.runner, core.agents.claude, core.agents.command"
    code = f"import sys; sys.path.insert(0, sys.argv[1]); import {modules}"
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(CORE.parent)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


def test_launcher_spawns_the_agent_before_heavy_imports() -> None:
    """Dispatch latency rests on this: only os, sys, time and the built-in _signal load before the agent runs."""
    tree = ast.parse((CORE / "launch.py").read_text())
    top = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    modules = {node.module or "" for node in top if isinstance(node, ast.ImportFrom)}
    modules |= {alias.name for node in top if isinstance(node, ast.Import) for alias in node.names}
    assert modules <= {"__future__", "os", "sys", "time", "_signal"}
