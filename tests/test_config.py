"""bots.yaml validation: typed, key paths in every error, secrets only by env var name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import load_config, parse_config
from core.errors import ConfigError
from tests.conftest import ROOT, orchestra


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "bots.yaml").read_text())
    return data


def test_shipped_config_is_valid() -> None:
    config, path = load_config(ROOT / "bots.yaml")
    assert path == ROOT / "bots.yaml"
    assert config.routing.default_agent == "standin"
    assert set(config.routing.categories) == {
        "architecture", "backend", "frontend", "tests", "docs", "bugfix", "refactor", "devops",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["agents"]["claude"].update(max_concurrent=0), "agents.claude.max_concurrent: must be ≥ 1"),
        (lambda d: d["agents"]["claude"].update(colour="red"), "agents.claude.colour: unknown key"),
        (lambda d: d.update(telegarm={}), "telegarm: unknown key"),
        (lambda d: d["limits"].update(task_timeout_s="soon"), "limits.task_timeout_s: must be a number"),
        (lambda d: d["agents"]["claude"].update(kind="gpt"), "agents.claude.kind: must be one of"),
        (lambda d: d["routing"].update(default_agent="nobody"), "'nobody' is not a configured agent"),
        (
            lambda d: d["routing"]["categories"].update(backend="ghost"),
            "routing.categories.backend: 'ghost' is not a configured agent",
        ),
        (
            lambda d: d["routing"].update(rules=[{"name": "x", "pattern": "(", "category": "backend"}]),
            "routing.rules.0.pattern: not a valid regular expression",
        ),
        (
            lambda d: d["routing"].update(rules=[{"name": "x", "pattern": r"(\w+) \1", "category": "backend"}]),
            "routing.rules.0.pattern: not a valid regular expression (invalid escape sequence: \\1; rules use RE2",
        ),
        (
            lambda d: d["routing"].update(rules=[{"name": "x", "pattern": "deploy(?! docs)", "category": "devops"}]),
            "routing.rules.0.pattern: not a valid regular expression (invalid perl operator: (?!",
        ),
        (
            lambda d: d["agents"]["claude"].update(env={"ANTHROPIC_API_KEY": "sk-ant-123"}),
            "looks like a secret",
        ),
        (lambda d: d["tmux"].update(socket_name="../evil"), "tmux.socket_name: use letters"),
        (lambda d: d.pop("agents"), "agents: required key is missing"),
    ],
)
def test_bad_values_name_the_key_path(edit: Any, message: str) -> None:
    data = shipped()
    edit(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_env_from_reads_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-secret-value")
    config = parse_config(shipped())
    assert config.secret_env("claude") == {"ANTHROPIC_API_KEY": "sk-test-secret-value"}
    assert "sk-test-secret-value" not in str(config.agent_settings("claude"))


def test_multi_word_command_is_split_not_shelled() -> None:
    settings = parse_config(shipped()).agent_settings("standin")
    assert settings.command.endswith("python") or "python" in settings.command
    assert settings.prefix_args[0] == "-S"
    assert settings.prefix_args[1].endswith("core/agents/standin")
    assert settings.splice(["X", "-p", "t"]) == ["X", *settings.prefix_args, "-p", "t"]


def test_yaml_syntax_error_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bots.yaml"
    bad.write_text("agents: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read YAML"):
        load_config(bad)


def test_config_check_cli(tmp_path: Path) -> None:
    ok = orchestra("config", "check", config=ROOT / "bots.yaml", env={"ORCHESTRA_HOME": str(tmp_path)})
    assert ok.returncode == 0
    assert "valid" in ok.stdout
    assert "agent standin" in ok.stdout
    data = shipped()
    data["agents"]["echo"]["max_concurrent"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    out = orchestra("config", "check", config=bad, env={"ORCHESTRA_HOME": str(tmp_path)})
    assert out.returncode == 1
    assert out.stderr.strip().endswith("agents.echo.max_concurrent: must be ≥ 1")
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    text = (ROOT / "bots.yaml").read_text() + "\nlimits:\n  max_concurrent: 9\n"
    bad = tmp_path / "bots.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match="'limits' appears twice"):
        load_config(bad)


def _models() -> list[type[Any]]:
    from pydantic import BaseModel

    import core.config

    names = [getattr(core.config, name) for name in core.config.__all__]  # the package loads each on first use
    return [m for m in names if isinstance(m, type) and issubclass(m, BaseModel)]


def test_every_key_is_documented() -> None:
    models = _models()
    assert len(models) >= 19
    for model in models:
        assert (model.__doc__ or "").strip(), model.__name__
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_every_duration_is_at_most_thirty_days() -> None:
    durations = [(m, name) for m in _models() for name in m.model_fields if name.endswith("_s")]
    assert len(durations) >= 20
    for model, name in durations:
        if model.model_fields[name].metadata and any(getattr(c, "le", None) for c in model.model_fields[name].metadata):
            continue  # bounded tighter already (telegram.poll_timeout_s ≤ 50)
        with pytest.raises(ValueError, match=r"must be at most 2592000 \(30 days\)"):
            model.model_validate({**_required(model), name: 1e12})


def _required(model: type[Any]) -> dict[str, Any]:
    """The smallest valid data for a model that has required keys."""
    return {"url": "https://bot.example.com/telegram"} if "url" in model.model_fields else {}


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d["agents"]["claude"]["env_from"].update(KEY="sk-ant-123 x"), "agents.claude.env_from"),
        (lambda d: d["agents"]["claude"].update(env_pass=["NOT-A-NAME"]), "agents.claude.env_pass.0"),
        (lambda d: d["telegram"].update(token_env="123:abc"), "telegram.token_env"),
        (lambda d: d["slack"].update(app_token_env="xapp-1"), "slack.app_token_env"),
    ],
)
def test_env_var_names_are_checked_alike(edit: Any, where: str) -> None:
    data = shipped()
    edit(data)
    with pytest.raises(ConfigError, match=rf"{where}\S*: .* must name an environment variable"):
        parse_config(data)


@pytest.mark.parametrize("section", ["telegram", "slack"])
def test_urls_are_checked_alike(section: str) -> None:
    data = shipped()
    data[section]["api_base_url"] = "ftp://example.com"
    with pytest.raises(ConfigError, match=rf"{section}.api_base_url: 'ftp://example.com' is not an http\(s\) URL"):
        parse_config(data)
