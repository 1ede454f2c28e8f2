"""The opencode plugin through which Orchestra's permission hook sees every tool call.

opencode 1.18 has no shell hooks. ``plugin_source`` is a JavaScript module for the config's
``plugin`` list: its ``tool.execute.before`` runs the (guarded) hook line with ``/bin/sh -c``,
the payload ``{hook_event_name: "tool.execute.before", tool_name, tool_input, session_id,
call_id, cwd}`` on stdin, and throws the deny's reason (which the model reads as the tool's
error) unless the hook exited 0 with ``{"decision": "allow"}``. Measured: opencode silently
runs without a local plugin that is missing or does not load, so the config Orchestra writes
denies every tool (``permission: {"*": "deny"}``) and only this plugin's ``config`` hook opens
them: no plugin, no tools. The plugin waits for the hook without blocking opencode's loop, and
kills it after ``timeout_ms`` (a deny).
"""

from __future__ import annotations

import json
import re

_SOURCE = """\
// Written by Orchestra (core/agents/opencode.py): opencode has no shell hooks, so this plugin puts
// every tool call to Orchestra's permission hook first and throws (the model reads why) unless the
// hook answered {"decision": "allow"}. opencode's own permission config, as Orchestra writes it,
// denies every tool; only this plugin, once loaded, opens them, so a plugin that fails to load
// (opencode then carries on without it) leaves the agent without tools rather than ungated.
import { spawn } from "node:child_process"

const HOOK = __HOOK__
const TIMEOUT_MS = __TIMEOUT_MS__
const FAILED = __FAILED__

function ask(payload) {
  return new Promise((resolve) => {
    let out = ""
    let err = ""
    let done = false
    const child = spawn("/bin/sh", ["-c", HOOK], { stdio: ["pipe", "pipe", "pipe"] })
    const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS)
    const finish = (code) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve({ code, out, err })
    }
    child.stdout.on("data", (data) => { out += data })
    child.stderr.on("data", (data) => { err += data })
    child.on("error", () => finish(-1))
    child.on("close", (code) => finish(code))
    child.stdin.on("error", () => {})
    child.stdin.end(JSON.stringify(payload))
  })
}

export const OrchestraPermissions = async ({ directory }) => ({
  config: async (config) => {
    config.permission = { "*": "allow" }
  },
  "tool.execute.before": async (input, output) => {
    const payload = {
      hook_event_name: "tool.execute.before",
      tool_name: input.tool,
      tool_input: output.args,
      session_id: input.sessionID,
      call_id: input.callID,
      cwd: directory,
    }
    const { code, out, err } = await ask(payload)
    let answer = null
    try {
      answer = JSON.parse(out.trim())
    } catch {}
    if (code === 0 && answer && answer.decision === "allow") return
    throw new Error((answer && answer.reason) || err.trim() || FAILED)
  },
})
"""


def plugin_source(hook: str, timeout_ms: int, failed: str) -> str:
    """The plugin's JavaScript, with the hook line, its timeout and the failure reason as JSON literals."""
    values = {"__HOOK__": json.dumps(hook), "__TIMEOUT_MS__": str(int(timeout_ms)), "__FAILED__": json.dumps(failed)}
    return re.sub("__HOOK__|__TIMEOUT_MS__|__FAILED__", lambda match: values[match.group(0)], _SOURCE)
