"""moodtune on Discord (discord.py 2.x): cogs per concern over the shared engine.

``app`` wires the bot, ``chat`` handles mentions/DMs/enabled channels and reactions,
``commands`` the member slash commands, ``admin`` the operator ones, ``views`` the buttons and
``render`` every word and embed (pure, unit-tested). ``bot.discord_app`` re-exports the two entry
points so callers need not know the layout.
"""

from bot.discord.app import MoodtuneBot, create_bot, run_discord

__all__ = ["MoodtuneBot", "create_bot", "run_discord"]
