"""Discord adapter entry points (implementation in the ``bot.discord`` package).

``bot.commands_run`` imports ``run_discord`` from here; tests and tools use ``create_bot``.
"""

from bot.discord.app import DiscordConfigError, MoodtuneBot, create_bot, run_discord

__all__ = ["DiscordConfigError", "MoodtuneBot", "create_bot", "run_discord"]
