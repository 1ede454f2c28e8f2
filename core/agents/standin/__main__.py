"""Start the stand-in: ``python -m core.agents.standin``, or ``python -S <checkout>/core/agents/standin``."""

from __future__ import annotations

import os
import sys

if not __package__:  # started as a folder (bots.yaml): imports resolve in its checkout, not in the folder
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from core.agents.standin.cli import main  # (after the path is set)

sys.exit(main())
