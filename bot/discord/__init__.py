"""moodtune on Discord (discord.py 2.x): cogs per concern over the shared engine.

``app`` wires the bot, ``chat`` handles mentions/DMs/enabled channels and reactions,
``commands`` the member slash commands, ``admin`` the operator ones, ``views`` the buttons and
``render`` every word and embed (pure, unit-tested). The package exports the entry points.
"""

from bot.discord.app import DiscordConfigError, MoodtuneBot, create_bot, run_discord

__all__ = ["DiscordConfigError", "MoodtuneBot", "create_bot", "run_discord"]
