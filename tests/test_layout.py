"""The house's shape: every module says its one job first, none grows past ~400 lines, tests mirror the nouns."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 420  # "about 400": a module past it holds more than one concern
MODULES = sorted(p for top in ("core", "bot") for p in (ROOT / top).rglob("*.py"))


def test_every_module_states_its_job_in_its_first_line() -> None:
    missing = []
    for path in MODULES:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        first = (doc or "").splitlines()[0] if doc else ""
        if len(first.split()) < 3:
            missing.append(str(path.relative_to(ROOT)))
    assert missing == [], f"modules without a first line saying their job: {missing}"


def test_no_module_is_over_about_400_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in MODULES}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_main_nouns_have_a_test_file_of_their_own() -> None:
    nouns = ["service", "engine", "protocol", "runner", "tmux", "progress", "commands", "config", "routing",
             "costs", "store", "outbox", "text", "cli", "telegram", "slack", "digest", "metrics", "audit"]  # fmt: skip
    assert [n for n in nouns if not (ROOT / "tests" / f"test_{n}.py").exists()] == []
