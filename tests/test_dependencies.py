"""What `pip install .` installs is what the bot imports: no runtime module hides in a dev extra."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT


def _runtime_requirements() -> list[Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(line) for line in data["project"]["dependencies"]]


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported anywhere under bot/ and core/ (lazy imports too), with the files."""
    found: dict[str, set[str]] = {}
    for path in [*ROOT.joinpath("bot").rglob("*.py"), *ROOT.joinpath("core").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("bot", "core"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution `pip install .` brings in: the declared ones, their extras' and theirs, recursively."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in requirements]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for line in md.requires(name) or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append((canonicalize_name(sub.name), frozenset(sub.extras)))
    return {name for name, _ in seen}


def test_every_module_bot_and_core_import_is_a_declared_runtime_dependency() -> None:
    declared = {canonicalize_name(r.name) for r in _runtime_requirements()}
    owners = md.packages_distributions()
    undeclared = {}
    for module, files in _third_party_imports().items():
        dists = {canonicalize_name(d) for d in owners.get(module, [module])}
        if not dists & declared:
            undeclared[module] = sorted(files)
    assert not undeclared, f"imported at runtime but not in [project.dependencies]: {undeclared}"


def test_the_chat_transports_import_with_only_what_pip_install_dot_installs() -> None:
    """Import each transport in a fresh interpreter that refuses any module outside the runtime closure."""
    allowed = sorted(_closure(_runtime_requirements()) | {"orchestra"})
    distributions = md.packages_distributions().items()
    owners = {module: sorted(canonicalize_name(d) for d in dists) for module, dists in distributions}
    script = f"""
import importlib.abc, importlib.util, sys
allowed, owners = set({allowed!r}), {json.dumps(owners)}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in owners and not set(owners[top]) & allowed:
            raise ModuleNotFoundError(f"No module named {{top!r}} (not a runtime dependency)", name=top)
        return None
sys.meta_path.insert(0, Refuse())
import bot.telegram, bot.slack, bot.scheduler, bot.doctor, core.metrics, core.digest, core.pricing
import slack_sdk.socket_mode.aiohttp, telegram.ext._utils.webhookhandler
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(ROOT), check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
