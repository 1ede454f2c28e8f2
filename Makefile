# Agent CLIs at the versions Orchestra is tested with, installed under .agents/ (ignored by git).
# `make real-clis` installs all eight and runs their real-CLI tests against the fake model server.

AGENTS ?= .agents
NPM_INSTALL = npm install --prefix $(AGENTS) --no-audit --no-fund --save-exact --loglevel=error

# Each wrapper pins its linux-x64 payload (the real binary) as an exact optional dependency.
CLAUDE_CODE = @anthropic-ai/claude-code@2.1.332
CODEX = @openai/codex@0.169.0
GEMINI = @google/gemini-cli@0.61.0
QWEN = @qwen-code/qwen-code@0.24.4
# opencode-ai's wrapper stops at 1.18.33; the binary it would fetch is published as 1.18.34.
OPENCODE = opencode-linux-x64@1.18.34
# @factory/cli 0.225.1 asks for a linux-x64 payload of its own version that was never published.
DROID = @factory/cli@0.225.1 @factory/cli-linux-x64@0.225.2
AIDER = aider-chat==0.86.2
# A 24 kB wrapper and its linux-x64 payload (189 MB, one binary that unpacks ~235 MB into ~/.cache/copilot).
COPILOT = @github/copilot@1.0.102

.PHONY: agents agents-ci real-clis real-clis-ci

agents-ci:  ## Claude Code and Codex only: what .ci/run installs
	$(NPM_INSTALL) $(CLAUDE_CODE) $(CODEX)

agents: agents-ci  ## all eight CLIs
	$(NPM_INSTALL) $(GEMINI) $(QWEN) $(OPENCODE) $(DROID) $(COPILOT)
	test -x $(AGENTS)/aider/bin/python || python3 -m venv $(AGENTS)/aider
	$(AGENTS)/aider/bin/pip install -q --disable-pip-version-check $(AIDER)
	# One directory for PATH holds all eight: opencode-linux-x64 is the bare binary (its wrapper,
	# which would link it, stops at an older version) and aider lives in its own venv.
	ln -sf ../opencode-linux-x64/bin/opencode $(AGENTS)/node_modules/.bin/opencode
	ln -sf ../../aider/bin/aider $(AGENTS)/node_modules/.bin/aider

real-clis: agents  ## install every CLI, then run every real-CLI test (~10 min: some CLIs retry a 500 for minutes)
	ORCHESTRA_REAL_CLI_SLOW=1 python3 -m pytest -m real_cli -v tests/test_real_clis.py tests/test_permission_hooks_more.py

real-clis-ci: agents-ci
	python3 -m pytest -m real_cli -v tests/test_real_clis.py -k "claude or codex"
