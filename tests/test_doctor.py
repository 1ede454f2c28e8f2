"""``orchestra doctor`` as an operator runs it: what it says must match what ``orchestra bot`` will do."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import orchestra


def test_doctor_names_a_module_the_enabled_slack_bridge_cannot_import(
    tmp_path: Path, home: Path, config_data: dict[str, Any]
) -> None:
    """An install without aiohttp: the bot would die on `import bot.slack`, so doctor must not say ok."""
    slack = {"enabled": True, "bot_token_env": "ORCH_T_SLACK_BOT", "app_token_env": "ORCH_T_SLACK_APP"}
    data = {**config_data, "slack": slack}
    cfg = tmp_path / "bots.yaml"
    cfg.write_text(yaml.safe_dump(data))
    shadow = tmp_path / "without-aiohttp" / "aiohttp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'aiohttp'\", name='aiohttp')\n")
    env = {
        "ORCHESTRA_HOME": str(home),
        "ORCH_T_SLACK_BOT": "xoxb-test",
        "ORCH_T_SLACK_APP": "xapp-test",
        "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")]),
    }
    broken = orchestra("doctor", config=cfg, env=env)
    [line] = [line for line in broken.stdout.splitlines() if line.split()[1:2] == ["slack"]]
    assert line.split()[0] == "NO" and "aiohttp" in line, broken.stdout
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    fine = orchestra("doctor", config=cfg, env=env)
    [line] = [line for line in fine.stdout.splitlines() if line.split()[1:2] == ["slack"]]
    assert line.split()[0] == "ok", fine.stdout
