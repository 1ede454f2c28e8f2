"""The CLI's ``permissions``: the policy an agent's tool calls are judged by, and what it says of one call."""

from __future__ import annotations

import os
import sys
import textwrap
from typing import TYPE_CHECKING

from bot.cli.output import as_json

if TYPE_CHECKING:
    import argparse

    from bot.app import App
    from core.config import Config


def permissions(app: App, args: argparse.Namespace) -> int:
    from core.errors import OrchestraError

    config = app.config
    if args.add or args.remove:
        try:
            if args.add:
                print(app.service.set_permission_rule(args.add[0], args.add[1], actor=_login()))
            else:
                print(app.service.remove_permission_rule(args.remove, actor=_login()))
        except OrchestraError as exc:
            print(f"orchestra: {exc}", file=sys.stderr)
            return 2
        return 0
    agent = args.agent or config.routing.default_agent
    if agent not in config.agents:
        print(f"orchestra: no agent {agent!r} in bots.yaml (agents: {', '.join(config.agents)})", file=sys.stderr)
        return 2
    policy = config.permission_policy(agent, args.category or "", os.getcwd(), app.store.permission_rules())
    if args.check:
        return _check(policy, args.check, args.json)
    if args.json:
        print(as_json({"agent": agent, "asks": _asking(config, agent), **policy.to_dict()}, ensure_ascii=False))
        return 0
    rules = config.permissions
    print(f"agent {agent}: {_asking(config, agent)}")
    print(f"  a question waits {rules.ask_timeout_s:g}s; no answer means {rules.on_timeout}")
    for layer in policy.layers:
        if not (layer.allow or layer.ask or layer.deny):
            continue
        print(f"  {layer.name}:")
        for kind in ("deny", "ask", "allow"):
            texts = [rule.text for rule in getattr(layer, kind)]
            if texts:
                body = textwrap.fill(", ".join(texts), width=100, initial_indent=" " * 6, subsequent_indent=" " * 6)
                print(f"    {kind} ({len(texts)}):\n{body}")
    print("  nothing matching is asked; try one call with --check 'Bash(curl https://example.org)'")
    return 0


def _check(policy: object, text: str, json_out: bool) -> int:
    from core.permissions.call import ToolCall
    from core.permissions.policy import Policy, grant_rule, parse_rule

    assert isinstance(policy, Policy)
    try:
        rule = parse_rule(text)
    except ValueError as exc:
        print(f"orchestra: {exc}", file=sys.stderr)
        return 2
    call = ToolCall(rule.tool, rule.pattern or "")
    judgement = policy.judge(call)
    grant = grant_rule(call, policy) if judgement.verdict == "ask" else ""
    if json_out:
        print(as_json({"call": call.shown(), "verdict": judgement.verdict, "why": judgement.why, "grant": grant}))
        return 0
    print(f"{call.shown()}: {judgement.verdict} ({judgement.why})")
    if grant:
        print(f"  'Allow for this task' would add {grant}")
    return 0


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


def _asking(config: Config, agent: str) -> str:
    from core.agents import hooked

    settings = config.agents[agent]
    if not hooked(settings.kind):
        return f"{settings.kind} has no pre-tool hook: it runs in its own unattended mode (README Permissions)"
    if not settings.hook:
        return "its hook is off (hook: false): it runs in its CLI's own unattended mode"
    return "asks before every tool call (its CLI runs Orchestra's hook)"
