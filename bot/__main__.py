"""``python -m bot``: the same as the ``orchestra`` command."""

from __future__ import annotations

import sys

from bot.cli import main

sys.exit(main())
