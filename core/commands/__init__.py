"""The chat command layer: neutral messages in, service calls, neutral answers out.

``parsing`` reads text as a command, ``answers`` renders what the bot says, ``taps`` handles
buttons and ``dispatch`` holds :class:`Commands`, which puts them together for a transport.
"""

from __future__ import annotations

from core.commands.answers import toast
from core.commands.dispatch import Commands
from core.commands.parsing import COMMANDS, CommandHandler, CommandSpec, Syntax

__all__ = ["COMMANDS", "CommandHandler", "CommandSpec", "Commands", "Syntax", "toast"]
