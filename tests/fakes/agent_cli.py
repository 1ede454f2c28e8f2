"""A stand-in for an agent CLI that replays a recorded run: what the engine and runner meet is real.

Configured as an agent's ``command`` (any ``kind``: the adapter's own arguments are ignored),
it prints the file ``FAKE_CLI_STDOUT`` to stdout, creates the files named in ``FAKE_CLI_TOUCH``
(``:``-separated, relative to the task's cwd, as a CLI's cache or work would), and exits with
``FAKE_CLI_EXIT`` (0 by default), after ``FAKE_CLI_HANG`` seconds (0 by default).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main() -> int:
    for name in filter(None, os.environ.get("FAKE_CLI_TOUCH", "").split(":")):
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("written by the fake CLI\n")
    sys.stdout.write(Path(os.environ["FAKE_CLI_STDOUT"]).read_text(encoding="utf-8"))
    sys.stdout.flush()
    time.sleep(float(os.environ.get("FAKE_CLI_HANG", "0")))  # a CLI still retrying after what it printed
    return int(os.environ.get("FAKE_CLI_EXIT", "0"))


if __name__ == "__main__":
    sys.exit(main())
