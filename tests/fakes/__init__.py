"""Fakes of what cannot run here: the Telegram Bot API, Slack, a model API, an agent CLI; real HTTP on 127.0.0.1."""
