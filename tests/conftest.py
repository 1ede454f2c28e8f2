"""Shared fixtures: a private tmux server, a real SQLite store, a config written as YAML."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import App, open_app

ROOT = Path(__file__).resolve().parent.parent

requires_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def mount_tmpfs(where: Path, size: str) -> Callable[[], None]:
    """Mount a small tmpfs at ``where`` (made if missing) and return its unmount; the test is
    skipped where that is not allowed (it needs root: CI runs as root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    where.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=700", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")

    def unmount() -> None:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)

    return unmount


@pytest.fixture(autouse=True, scope="session")
def _scratch_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The config cache goes to a scratch folder, never the real ~/.cache (subprocesses inherit it)."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


def base_config(socket_name: str) -> dict[str, Any]:
    """bots.yaml as shipped, with a private tmux socket and a fast stand-in."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "bots.yaml").read_text())
    data["tmux"] = {"socket_name": socket_name, "session": "test", "config_file": "/dev/null"}
    data["agents"]["standin"]["env"] = {"ORCHESTRA_STANDIN_DELAY": "0"}
    data["agents"]["claude"]["command"] = "claude-not-installed-here"  # same routing whatever this machine has
    data["limits"]["engine_idle_exit_s"] = 5
    return data


@pytest.fixture
def socket_name() -> Iterator[str]:
    name = f"orch-test-{uuid.uuid4().hex[:10]}"
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRA_HOME", str(path))
    monkeypatch.delenv("ORCHESTRA_CONFIG", raising=False)
    monkeypatch.delenv("TMUX", raising=False)
    return path


@pytest.fixture
def config_data(socket_name: str) -> dict[str, Any]:
    return base_config(socket_name)


@pytest.fixture
def make_app(tmp_path: Path, home: Path, config_data: dict[str, Any]) -> Iterator[Any]:
    """Write the (possibly edited) config and open the app on it; closed at teardown."""
    apps: list[App] = []

    def _make(**overrides: Any) -> App:
        data = config_data
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split("__")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        path = tmp_path / "bots.yaml"
        path.write_text(yaml.safe_dump(data))
        app = open_app(path)
        apps.append(app)
        return app

    yield _make
    for app in apps:
        app.close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A scratch git repository for tasks to work in."""
    path = tmp_path / "repo"
    path.mkdir()
    for cmd in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(path), *cmd], check=True)
    (path / "README.md").write_text("# project\nline two\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "init"], check=True)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def orchestra(
    *args: str, config: Path, env: dict[str, str] | None = None, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `orchestra` entry point as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("TMUX", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=str(ROOT),
        input=input,
        check=False,
    )
