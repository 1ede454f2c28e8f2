"""The permission policy: the shipped defaults, how layers and rules combine, shell commands, paths, grants."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from core.config.permissions import PermissionsConfig
from core.permissions.call import ToolCall
from core.permissions.policy import Layer, Policy, grant_rule, parse_rule, split_command

CWD = "/work/project"


def defaults(cwd: str = CWD, *over: Layer) -> Policy:
    lists = PermissionsConfig().model_dump(include={"allow", "ask", "deny"})
    return Policy(cwd=cwd, layers=(*over, Layer.of("permissions", lists)), home="/home/u")


def verdict(policy: Policy, tool: str, subject: str = "") -> str:
    return policy.judge(ToolCall(tool, subject)).verdict


@pytest.mark.parametrize(
    ("tool", "subject", "expected"),
    [
        ("Bash", "pytest -q", "allow"),
        ("Bash", "pytest", "allow"),
        ("Bash", "python -m pytest tests/test_x.py -x", "allow"),
        ("Bash", "npm test", "allow"),
        ("Bash", "ruff check .", "allow"),
        ("Bash", "make build", "allow"),
        ("Bash", "git status", "allow"),
        ("Bash", "FOO=1 pytest -q", "allow"),
        ("Bash", "pytest -q 2>&1 | tail -5", "allow"),
        ("Bash", "cd /work/project/src && pytest", "allow"),
        ("Bash", "curl -s http://127.0.0.1:9/x", "ask"),
        ("Bash", "pip install requests", "ask"),
        ("Bash", "npm install left-pad", "ask"),
        ("Bash", "git push origin main", "ask"),
        ("Bash", "cat /etc/passwd", "ask"),
        ("Bash", "ls ../other-project", "ask"),
        ("Bash", "echo $(cat ~/.aws/credentials)", "ask"),
        ("Bash", "echo `id`", "ask"),
        ("Bash", "python -c 'import os'", "ask"),
        ("Bash", "pytest -q; curl http://x", "ask"),
        ("Bash", "rm -rf /", "deny"),
        ("Bash", "rm -fr /", "deny"),
        ("Bash", "rm -r -f /", "deny"),
        ("Bash", "rm --recursive --force /", "deny"),
        ("Bash", "/bin/rm -rf /*", "deny"),
        ("Bash", "pytest -q && rm -rf ~", "deny"),
        ("Bash", "sudo apt-get install x", "deny"),
        ("Bash", "cat ~/.ssh/id_rsa", "deny"),
        ("Bash", "echo $(sudo id)", "deny"),
        ("Edit", "/work/project/src/app.py", "allow"),
        ("Edit", "src/app.py", "allow"),
        ("Edit", "/work/project/.git/hooks/pre-commit", "ask"),
        ("Bash", "cp evil.sh .git/hooks/pre-commit", "ask"),
        ("Edit", "/work/project/../other/app.py", "ask"),
        ("Edit", "/etc/hosts", "ask"),
        ("Edit", "/home/u/.ssh/authorized_keys", "deny"),
        ("Edit", "~/.bashrc", "deny"),
        ("Read", "/work/project/README.md", "allow"),
        ("Read", "", "allow"),
        ("Edit", "", "ask"),
        ("Read", "/home/u/.ssh/id_rsa", "deny"),
        ("Read", "/etc/shadow", "ask"),
        ("WebFetch", "https://example.org/a", "ask"),
        ("WebSearch", "python asyncio", "ask"),
        ("TodoWrite", "", "allow"),
        ("mcp__github__create_issue", "", "ask"),
    ],
)
def test_the_shipped_defaults_are_what_a_careful_person_picks(tool: str, subject: str, expected: str) -> None:
    assert verdict(defaults(), tool, subject) == expected


def test_a_deny_anywhere_wins_over_an_allow_in_a_more_specific_layer() -> None:
    agent = Layer.of("agent", {"allow": ["Bash(sudo *)", "Bash(curl *)"]})
    policy = defaults(CWD, agent)
    assert verdict(policy, "Bash", "sudo ls") == "deny"
    assert verdict(policy, "Bash", "curl http://x") == "allow"  # the agent's allow beats the global ask


def test_the_most_specific_layer_with_a_match_decides_and_ask_beats_allow_within_it() -> None:
    category = Layer.of("category devops", {"ask": ["Bash(pytest *)"]})
    assert verdict(defaults(CWD, category), "Bash", "pytest -q") == "ask"
    both = Layer.of("agent", {"allow": ["Bash(git *)"], "ask": ["Bash(git push *)"]})
    policy = defaults(CWD, both)
    assert (verdict(policy, "Bash", "git push"), verdict(policy, "Bash", "git fetch")) == ("ask", "allow")


def test_nothing_matching_is_asked_and_the_judgement_says_why() -> None:
    judgement = Policy(cwd=CWD, layers=()).judge(ToolCall("Bash", "ls"))
    assert (judgement.verdict, judgement.rule, judgement.why) == ("ask", "", "no rule allows it")
    judged = defaults().judge(ToolCall("Bash", "cat /etc/hosts"))
    assert judged.why == "it touches /etc/hosts, outside the working directory"


def test_a_grant_allows_the_same_pattern_for_the_rest_of_the_task_but_never_a_denial() -> None:
    policy = defaults()
    asked = ToolCall("Bash", "curl -s http://127.0.0.1:9/x")
    rule = grant_rule(asked, policy)
    assert rule == "Bash(curl *)"
    granted = policy.with_grants([rule])
    assert verdict(granted, "Bash", "curl http://example.org") == "allow"
    assert verdict(granted.with_grants(["Bash(rm *)"]), "Bash", "rm -rf /") == "deny"


@pytest.mark.parametrize(
    ("call", "rule"),
    [
        (ToolCall("Bash", "git push origin main"), "Bash(git push *)"),
        (ToolCall("Bash", "pytest -q && npm install x"), "Bash(npm install *)"),
        (ToolCall("Bash", "cat /etc/hosts"), "Bash(cat /etc/hosts)"),
        (ToolCall("Bash", "echo $(id)"), "Bash(echo $(id))"),
        (ToolCall("Edit", "/etc/nginx/site.conf"), "Edit(/etc/nginx/**)"),
        (ToolCall("WebFetch", "https://docs.python.org/3/library/"), "WebFetch(https://docs.python.org/*)"),
        (ToolCall("mcp__github__create_issue"), "mcp__github__create_issue"),
    ],
)
def test_allow_for_this_task_names_the_tool_and_its_pattern(call: ToolCall, rule: str) -> None:
    policy = defaults()
    assert grant_rule(call, policy) == rule
    assert policy.with_grants([rule]).judge(call).verdict == "allow"


def test_commands_are_split_into_simple_commands_and_opaque_ones_are_not_guessed() -> None:
    assert split_command("a -x && b | c; d || e & f") == ["a -x", "b", "c", "d", "e", "f"]
    assert split_command("echo 'a && b'") == ["echo a && b"]
    assert split_command("pytest\nnpm install x") == ["pytest", "npm install x"]
    assert split_command("echo $(id)") is None
    assert split_command("echo 'unbalanced") is None


def test_paths_are_resolved_so_dot_dot_and_symlinks_cannot_escape(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "link").symlink_to(outside)
    policy = defaults(str(project))
    assert verdict(policy, "Edit", str(project / "src" / "a.py")) == "allow"
    assert verdict(policy, "Edit", str(project / "src" / ".." / ".." / "outside" / "a.py")) == "ask"
    assert verdict(policy, "Edit", str(project / "link" / "a.py")) == "ask"
    assert verdict(policy, "Bash", f"cat {project}/link/secret") == "ask"


def test_a_policy_travels_in_the_spec_unchanged() -> None:
    policy = defaults(CWD, Layer.of("agent claude", {"allow": ["Bash(curl *)"]}))
    again = Policy.from_dict(policy.to_dict())
    assert again.to_dict() == policy.to_dict()
    assert verdict(again, "Bash", "curl http://x") == "allow"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Bash(", "is not a rule"),
        ("Bash()", "the pattern in the parentheses is empty"),
        ("rm -rf", "is not a rule"),
        ("", "is not a rule"),
    ],
)
def test_a_bad_rule_is_one_line_naming_it(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_rule(text)
    assert "\n" not in str(raised.value)


def test_a_bad_rule_in_bots_yaml_names_its_key_path() -> None:
    from core.config.loading import parse_config
    from core.errors import ConfigError

    data = yaml.safe_load((Path(__file__).parent.parent / "bots.yaml").read_text(encoding="utf-8"))
    data["permissions"]["ask"] = ["Bash("]
    with pytest.raises(ConfigError, match=r"permissions\.ask") as raised:
        parse_config(data)
    assert "is not a rule" in str(raised.value)


def test_a_category_and_an_agent_layer_come_before_the_global_lists() -> None:
    from core.config.loading import parse_config

    data = yaml.safe_load((Path(__file__).parent.parent / "bots.yaml").read_text(encoding="utf-8"))
    data["permissions"]["categories"] = {"devops": {"allow": ["Bash(docker *)"]}}
    config = parse_config(data)
    devops = config.permission_policy("claude", "devops", CWD)
    code = config.permission_policy("claude", "code", CWD)
    assert [layer.name for layer in devops.layers] == ["category devops", "agent claude", "permissions"]
    assert verdict(devops, "Bash", "docker ps") == "allow"
    assert verdict(code, "Bash", "docker ps") == "ask"
    assert devops.ask_timeout_s == 600 and devops.on_timeout == "deny"


def test_home_is_the_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    policy = Policy(cwd=CWD, layers=(Layer.of("x", {"deny": ["Edit(~/.ssh/**)"]}),))
    assert policy.home == os.path.expanduser("~") == "/home/someone"
    assert verdict(policy, "Edit", "/home/someone/.ssh/config") == "deny"


def test_the_cli_shows_the_policy_and_judges_one_call(tmp_path: Path) -> None:
    from tests.conftest import orchestra

    config = Path(__file__).parent.parent / "bots.yaml"
    env = {"ORCHESTRA_HOME": str(tmp_path)}
    shown = orchestra("permissions", "claude", config=config, env=env)
    assert shown.returncode == 0 and "deny (" in shown.stdout and "Bash(sudo *)" in shown.stdout
    asked = orchestra("permissions", "--check", "Bash(git push origin main)", config=config, env=env)
    assert asked.stdout.splitlines() == [
        "Bash(git push origin main): ask (asked by Bash(git push *))",
        "  'Allow for this task' would add Bash(git push *)",
    ]
    refused = orchestra("permissions", "--check", "Bash(rm -rf /)", "--json", config=config, env=env)
    assert '"verdict": "deny"' in refused.stdout
    bad = orchestra("permissions", "--check", "Bash(", config=config, env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "is not a rule" in bad.stderr
    unknown = orchestra("permissions", "nosuch", config=config, env=env)
    assert unknown.returncode == 2 and "no agent 'nosuch'" in unknown.stderr


def test_run_time_rules_from_the_cli_are_checked_audited_and_in_force(tmp_path: Path) -> None:
    from tests.conftest import orchestra

    config = Path(__file__).parent.parent / "bots.yaml"
    env = {"ORCHESTRA_HOME": str(tmp_path)}
    added = orchestra("permissions", "--add", "allow", "Bash(npm ci *)", config=config, env=env)
    assert added.returncode == 0 and "is now in the run-time allow list" in added.stdout
    checked = orchestra("permissions", "--check", "Bash(npm ci)", config=config, env=env)
    assert checked.stdout.startswith("Bash(npm ci): allow (allowed by Bash(npm ci *))")
    bad = orchestra("permissions", "--add", "maybe", "Bash(x)", config=config, env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == "orchestra: 'maybe' is not a list: use allow, ask or deny"
    removed = orchestra("permissions", "--remove", "Bash(npm ci *)", config=config, env=env)
    assert removed.returncode == 0
    again = orchestra("permissions", "--remove", "Bash(npm ci *)", config=config, env=env)
    assert again.returncode == 2 and "is not a run-time rule" in again.stderr
    audit = orchestra("audit", "--action", "permissions", config=config, env=env)
    assert "allow Bash(npm ci *)" in audit.stdout and "remove Bash(npm ci *)" in audit.stdout


def test_a_call_too_long_to_judge_is_asked_quickly() -> None:
    import time

    policy = defaults()
    started = time.monotonic()
    judged = policy.judge(ToolCall("Bash", "pytest " + "a" * 2_000_000))
    assert judged.verdict == "ask" and "too long to judge" in judged.why
    assert verdict(policy, "Bash", "pytest -q " + "x" * 90_000) == "allow"
    assert time.monotonic() - started < 2
