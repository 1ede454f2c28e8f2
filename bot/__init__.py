"""The edge: the terminal (CLI and console), the Telegram and Slack bridges, and the bot process that runs them."""
