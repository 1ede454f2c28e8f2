"""The bot process's logging: INFO and up to stderr, every secret scrubbed, noisy libraries quietened."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

from core.redact import Redactor


class _Redacting(logging.Formatter):
    """Never let a secret (the bot token is in every Bot API URL) reach a log line."""

    def __init__(self, fmt: str, secrets: Sequence[str]) -> None:
        super().__init__(fmt)
        self.redactor = Redactor.of(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(super().format(record))


class _BoltTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("As you gave `client` as well, `token` will be unused")


def configure_logging(*, secrets: Sequence[str] = ()) -> None:
    """Log INFO and up to stderr with secrets scrubbed; httpx's per-request lines (token in the URL) off."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "orchestra", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.orchestra = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    handler.setFormatter(_Redacting("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Bolt warns at every start when $SLACK_BOT_TOKEN is set (it reads it itself); we pass our own client.
    bolt = logging.getLogger("slack_bolt")
    if not any(isinstance(f, _BoltTokenNotice) for f in bolt.filters):
        bolt.addFilter(_BoltTokenNotice())
    # PTB 22 warns on every 429 that RetryAfter.retry_after will become a timedelta; we read both forms.
    warnings.filterwarnings("ignore", message=r".*attribute `retry_after` will be of type", module="telegram")
