"""Files both ways and voice notes in bots.yaml: ``files:`` (sizes and counts) and ``voice:`` (the endpoint)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from core.config.fields import EnvVarName, Seconds, StrictModel

TELEGRAM_DOWNLOAD_MB = 20  # the Bot API's getFile serves files up to 20 MB
UPLOAD_MB = 49  # what a sender reads of a file (bot.outbox.MAX_FILE_BYTES); Telegram's sendDocument takes 50 MB


class FilesConfig(StrictModel):
    """Photos and documents sent with a task, and the files an agent leaves for the chat."""

    max_mb: float = Field(
        default=20, gt=0, le=1024,
        description="The largest file accepted with a task, in MB (Telegram bots can fetch 20 MB at most).",
    )  # fmt: skip
    max_files: int = Field(default=10, ge=1, le=50, description="Files accepted with one message.")
    outbox_max_files: int = Field(
        default=10, ge=0, le=50, description="Files sent back from a task's .orchestra/outbox/ when it ends; 0: none."
    )
    outbox_max_mb: float = Field(
        default=UPLOAD_MB, gt=0, le=UPLOAD_MB,
        description="The largest file sent back; a larger one is named in a line instead.",
    )  # fmt: skip

    def max_bytes(self) -> int:
        return int(self.max_mb * 1024 * 1024)

    def outbox_max_bytes(self) -> int:
        return int(self.outbox_max_mb * 1024 * 1024)


class VoiceConfig(StrictModel):
    """Voice notes become a task's text through an OpenAI-compatible ``/audio/transcriptions`` endpoint."""

    url: str | None = Field(
        default=None,
        description="The API base, e.g. https://api.openai.com/v1 (POST URL/audio/transcriptions); null: off.",
    )
    key_env: EnvVarName | None = Field(default=None, description="The environment variable holding its API key.")
    model: str = Field(default="whisper-1", min_length=1, description="The transcription model's name.")
    language: str | None = Field(default=None, description="An ISO-639-1 hint (en, de, …); null: detected.")
    timeout_s: Seconds = Field(default=60, gt=0, description="How long one transcription may take.")
    max_mb: float = Field(default=20, gt=0, le=25, description="The longest voice note accepted, in MB.")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url.strip()):
            raise ValueError(f"{url!r} is not an http(s) address like https://api.openai.com/v1")
        return url.strip().rstrip("/")

    def endpoint(self) -> str | None:
        """Where a voice note is posted, or None when voice is not set up."""
        return f"{self.url}/audio/transcriptions" if self.url else None


__all__ = ["TELEGRAM_DOWNLOAD_MB", "UPLOAD_MB", "FilesConfig", "VoiceConfig"]
