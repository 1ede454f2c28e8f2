"""A stand-in for the ``claude`` CLI, for tests and the demo: no API key, no network.

It takes Claude Code's headless argv and prints what Claude Code 2.1.332 prints, so Orchestra's
real Claude path (adapter, runner, ``ClaudeParser``) runs end to end::

    python -m core.agents.standin -p "Create User model" --output-format stream-json --verbose

Flags: ``-p/--print [PROMPT]`` (no PROMPT: read it from stdin), ``--output-format
text|json|stream-json`` (``stream-json`` needs ``--verbose``, as in the real CLI; ``json`` prints
only the result object), ``--verbose``, ``--permission-mode MODE``, ``--model M`` (default
``claude-sonnet-4-5``), ``--resume/-r ID`` (reused as the session id), ``--max-turns N`` (below
2 ends a normal run with ``error_max_turns``), ``-v/--version``. Any other flag is an error
(exit 1), like the real CLI.

By default it says what it will do, calls the Write tool with an absolute path in the current
directory (the name comes from the task: "Create User model" -> ``user_model.py``), really
writes that file, reads the tool result, and ends with a ``result`` line. Each assistant line
repeats its API call's ``message.id`` and ``usage`` as the real CLI does, and
``total_cost_usd`` is priced at the Claude Sonnet 4.5 list price whatever ``--model`` says.

Environment variables:

``ORCHESTRA_STANDIN_MODE``
    ``success`` (default); ``api_error``: a 401 reported as ``subtype: "success"`` with
    ``is_error: true`` and ``terminal_reason: "api_error"`` but **exit 0** (the real CLI exits
    1 here; 0 proves Orchestra trusts the in-band flag, not the exit code); ``crash``: init and
    a few lines, then a stderr line and exit 3 with no result; ``hang``: init, then sleep until
    signalled; ``spend``: a new assistant message with the per-call usage (default 100k input
    tokens) every ``ORCHESTRA_STANDIN_DELAY`` seconds (default 0.05), forever, for cost caps;
    ``max_turns``: one tool round trip, then ``error_max_turns`` and exit 1;
    ``permission_denied``: the Write is denied (tool_result ``is_error``, no file), the run ends
    ``success`` with the call in ``permission_denials``, exit 0; ``noop``: one short message
    and a success result at once, no file (for start-up benchmarks).
``ORCHESTRA_STANDIN_DELAY``
    Seconds (float, default 0) to sleep between steps, so a run can be watched or cancelled.
``ORCHESTRA_STANDIN_DURATION``
    Total seconds for a run, spread evenly over its steps; wins over ``..._DELAY``.
``ORCHESTRA_STANDIN_RECORD``
    A path; the prompt bytes received (argv element or stdin) are written there unchanged.
``ORCHESTRA_STANDIN_USAGE``
    JSON with per-API-call ``input_tokens``, ``output_tokens``, ``cache_read_input_tokens`` and
    ``cache_creation_input_tokens`` (Anthropic semantics; keys left out count as 0).

SIGTERM, SIGINT and SIGHUP end it at once, silently, with 128 + the signal number. Start-up is
kept fast: standard library only, nothing heavy imported. bots.yaml starts it as a folder,
``{python} -S {orchestra}/core/agents/standin`` (see ``__main__``). Its modules: ``cli`` (the
command line, the environment, ``main``), ``session`` (the scripted run) and ``wire`` (the
stream's objects and the price).
"""
