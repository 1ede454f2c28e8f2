"""The CLI as a user runs it: real entry point in a subprocess, real tmux, real SQLite."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import build_parser
from tests.conftest import ROOT, orchestra, requires_tmux


@pytest.fixture
def cfg(tmp_path: Path, config_data: dict[str, Any], home: Path) -> Path:
    path = tmp_path / "bots.yaml"
    path.write_text(yaml.safe_dump(config_data))
    return path


def run(cfg: Path, home: Path, *args: str, **kw: Any) -> Any:
    return orchestra(*args, config=cfg, env={"ORCHESTRA_HOME": str(home)}, **kw)


@requires_tmux
def test_delegate_wait_prints_route_and_notification(cfg: Path, home: Path, repo: Path) -> None:
    out = run(cfg, home, "delegate", "--task", "Create User model", "--wait", "--cwd", str(repo))
    assert out.returncode == 0, out.stderr
    assert "t1 → standin" in out.stdout
    assert "notification (completion)" in out.stdout
    assert "✅ t1 succeeded" in out.stdout
    assert "user_model.py +" in out.stdout
    status = json.loads(run(cfg, home, "status", "--json").stdout)
    assert status["recent"][0]["id"] == "t1"
    assert status["recent"][0]["state"] == "succeeded"
    shown = json.loads(run(cfg, home, "show", "t1", "--json").stdout)
    assert shown["summary"]["files"][0]["path"] == "user_model.py"
    assert shown["model"] == "claude-sonnet-4-5"  # what the run reported using
    logs = run(cfg, home, "logs", "t1")
    assert '"type":"result"' in logs.stdout.replace(" ", "")
    assert run(cfg, home, "logs", "T1").stdout == logs.stdout  # ids are case-insensitive everywhere
    assert json.loads(run(cfg, home, "show", "#1", "--json").stdout)["id"] == "t1"
    cost = run(cfg, home, "cost")
    assert "standin" in cost.stdout


@requires_tmux
def test_delegate_without_wait_finishes_via_background_engine(
    cfg: Path, home: Path, tmp_path: Path, config_data: dict[str, Any], socket_name: str
) -> None:
    import subprocess
    import time

    config_data["agents"]["standin"]["env"] = {"ORCHESTRA_STANDIN_DELAY": "0.3"}
    cfg.write_text(yaml.safe_dump(config_data))
    out = run(cfg, home, "delegate", "--task", "write docs for the API", "--cwd", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    task = json.loads(out.stdout)
    assert task["decision"]["category"] == "docs"
    seen_windows: set[str] = set()
    deadline = time.monotonic() + 30
    while True:
        listed = subprocess.run(
            ["tmux", "-L", socket_name, "list-windows", "-a", "-F", "#{window_name}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        seen_windows.update(listed.stdout.split())
        state = json.loads(run(cfg, home, "show", task["id"], "--json").stdout)["state"]
        if state == "succeeded":
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    # the on-demand engine and the task ran on the configured private tmux server
    assert {"_engine", task["id"]} <= seen_windows


@requires_tmux
def test_task_file_placeholder_in_the_task_text_stays_text(cfg: Path, home: Path, tmp_path: Path) -> None:
    text = "print {task_file} and {task} as typed"
    out = run(cfg, home, "delegate", "--task", text, "--agent", "echo", "--cwd", str(tmp_path), "--wait")
    assert out.returncode == 0, out.stderr
    assert run(cfg, home, "logs", "t1").stdout.strip() == text  # `echo {task}`: the agent got the text verbatim


def test_route_json_runs_nothing(cfg: Path, home: Path) -> None:
    out = run(cfg, home, "route", "add a React login form with validation", "--json")
    assert out.returncode == 0, out.stderr
    decision = json.loads(out.stdout)
    assert set(decision) >= {"agent", "category", "rule", "reason"}
    assert decision["category"] == "frontend"
    assert decision["agent"] == "standin"  # claude is not installed here, so it is skipped
    assert "claude" in decision["reason"]
    assert not (home / "tasks").exists()


def test_a_backtracking_rule_does_not_hang_route_or_delegate(
    cfg: Path, home: Path, config_data: dict[str, Any], tmp_path: Path
) -> None:
    config_data["routing"]["rules"] = [{"name": "mine.evil", "pattern": "(a+)+$", "category": "docs"}]
    cfg.write_text(yaml.safe_dump(config_data))
    assert run(cfg, home, "config", "check").returncode == 0
    text = "a" * 40 + "!"  # ~2^40 steps for a backtracking engine
    out = run(cfg, home, "route", text, "--json", timeout=20)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rule"] != "mine.evil"
    out = run(cfg, home, "delegate", "--task", text, "--agent", "standin", "--cwd", str(tmp_path), "--json", timeout=20)
    assert out.returncode == 0, out.stderr


def test_cost_json_has_no_float_noise(cfg: Path, home: Path) -> None:
    from core.store import Store

    assert run(cfg, home, "budget", "day", "20").returncode == 0
    store = Store(home / "orchestra.db")
    for n, usd in enumerate((0.1, 0.2, 0.007415), 1):
        store.record_cost(
            {"task_id": f"t{n}", "ts": time.time(), "agent": "standin", "category": "docs", "cost_usd": usd}
        )
    store.close()
    out = run(cfg, home, "cost", "--json", "--all")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["total_usd"] == 0.307415  # not 0.30741500000000005
    assert "0000000" not in out.stdout


def test_route_reports_the_policy_s_approval_and_review(cfg: Path, home: Path, config_data: dict[str, Any]) -> None:
    config_data["policy"].update(approval_for=["architecture"], review_for=["architecture"])
    config_data["routing"]["categories"]["architecture"] = "standin"
    cfg.write_text(yaml.safe_dump(config_data))
    out = run(cfg, home, "route", "design the system architecture", "--json")
    decision = json.loads(out.stdout)
    assert (decision["category"], decision["require_approval"], decision["require_review"]) == (
        "architecture", True, True
    )  # fmt: skip
    assert "so this is an architecture task" in decision["reason"]
    assert "architecture tasks need approval (policy)" in decision["reason"]
    out = run(cfg, home, "delegate", "--task", "design the system architecture", "--json")
    delegated = json.loads(out.stdout)
    assert delegated["state"] == "awaiting_approval" and delegated["decision"] == decision


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "t999"], 1, "orchestra: unknown task 't999'"),
        (["cancel", "nope"], 1, "orchestra: unknown task 'nope'"),
        (["delegate", "--task", "x", "--agent", "ghost"], 1, "orchestra: unknown agent 'ghost'"),
        (["delegate", "--task", "x", "--cwd", "/no/such/dir"], 1, "does not exist"),
        (["delegate", "--task", "   "], 1, "the task text is empty"),
        (["status", "--bogus"], 2, "unrecognized arguments: --bogus"),
        (["frobnicate"], 2, "invalid choice"),
        (["budget", "day", "lots"], 1, "orchestra: 'lots' is not an amount"),
        (["budget", "day", "-5"], 1, "orchestra: a budget is at least $0.01"),
        (["budget", "task", "0.001"], 1, "orchestra: a budget is at least $0.01"),
        (["budget", "day"], 1, "orchestra: give the new day budget"),
        (["budget", "week", "5"], 2, "invalid choice: 'week'"),
        (["say", "t999", "hi"], 1, "orchestra: unknown task 't999'"),
        (["say", "t999", "   "], 1, "say what?"),
        (["say", "t999", "x" * 4001], 1, "that message is 4001 characters; 4000 at most"),
        (["stop", "t999"], 1, "orchestra: unknown task 't999'"),
        (["answer", "p999", "yes"], 1, "p999"),
    ],
)
def test_errors_are_one_line(cfg: Path, home: Path, args: list[str], code: int, message: str) -> None:
    out = run(cfg, home, *args)
    assert out.returncode == code
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_budget_changes_take_effect_and_are_audited(cfg: Path, home: Path) -> None:
    out = run(cfg, home, "budget", "day", "20")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("per-day budget is now $20.00\n💰 Budgets\n")
    assert "• per day: $20.00, set by local on " in out.stdout
    assert json.loads(run(cfg, home, "budget", "--json").stdout)[1]["value"] == 20.0
    assert run(cfg, home, "budget", "day", "nan").returncode == 1, "a bad amount changes nothing"
    assert run(cfg, home, "budget", "day", "reset").returncode == 0
    shown = run(cfg, home, "budget").stdout
    assert "• per day: none (bots.yaml)" in shown
    audit = run(cfg, home, "audit", "--action", "budget").stdout
    assert "budget — day none → $20.00" in audit and "budget — day $20.00 → none" in audit


def test_missing_agent_cli_is_one_line(cfg: Path, home: Path, config_data: dict[str, Any]) -> None:
    config_data["routing"]["default_agent"] = "claude"
    cfg.write_text(yaml.safe_dump(config_data))
    out = run(cfg, home, "delegate", "--task", "fix the login bug")
    assert out.returncode == 1
    assert "claude" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_doctor_reports_tmux_agents_and_data_dir(cfg: Path, home: Path) -> None:
    out = run(cfg, home, "doctor")
    assert "tmux" in out.stdout
    assert "agent claude" in out.stdout and "not found" in out.stdout
    assert "agent standin" in out.stdout and "2.1.332" in out.stdout
    assert "data dir" in out.stdout


def test_doctor_fails_when_an_agent_routing_uses_is_missing(cfg: Path, home: Path, config_data: dict[str, Any]) -> None:
    """The shipped routing sends every category to claude: without it, doctor says so and exits 1."""
    out = run(cfg, home, "doctor")
    line = next(line for line in out.stdout.splitlines() if " agent claude " in line)
    assert line.split()[0] == "NO" and "routing uses it for architecture" in line, line
    assert out.returncode == 1

    config_data["routing"]["categories"] = {}  # everything goes to the default agent, the stand-in
    cfg.write_text(yaml.safe_dump(config_data))
    out = run(cfg, home, "doctor")
    line = next(line for line in out.stdout.splitlines() if " agent claude " in line)
    assert line.split()[0] == "--" and "not found" in line and "routing does not use it" in line, line
    assert out.returncode == 0, out.stdout


def test_help_lists_every_command(cfg: Path, home: Path) -> None:
    out = run(cfg, home, "--help")
    for command in ("delegate", "status", "show", "peek", "logs", "attach", "cancel", "retry", "approve",
                    "reject", "route", "cost", "doctor", "demo", "config"):  # fmt: skip
        assert command in out.stdout
        readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
        assert f"orchestra {command}" in readme or command in ("show", "attach", "peek"), command


def test_every_subcommand_is_in_the_readme_s_using_it_block() -> None:
    """The parser is the list: a subcommand added without a line in "Using it" fails here."""
    [subcommands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("\n## Using it\n", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    documented = re.compile(r"(?:^|· )orchestra ([a-z]+)", re.MULTILINE)
    missing = sorted(set(subcommands.choices) - set(documented.findall(block)))
    assert not missing, f"not in the README's 'Using it' block: {', '.join(missing)}"
    assert len(subcommands.choices) >= 20  # the parser's own list, not an empty one
