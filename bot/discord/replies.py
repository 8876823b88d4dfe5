"""Answering an interaction safely, whatever state it is in.

An interaction can be answered exactly once with ``response.*``; after a ``defer`` every further
word must go through ``followup``. Error paths do not know which has happened, so they all go
through :func:`send_ephemeral`, and a failure to deliver an apology is logged, never raised — an
exception inside an error handler would only produce another, unhandled one.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.discord.render import ADMIN_ONLY, ENGINE_FAILED

log = logging.getLogger("moodtune.discord")

__all__ = ["NotAdminError", "report_app_error", "send_ephemeral"]


class NotAdminError(app_commands.CheckFailure):
    """The user has neither Manage Server nor a configured admin user/role id."""


async def send_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Say ``text`` to the invoking user only, via ``response`` or ``followup`` as appropriate."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not deliver an ephemeral reply (interaction expired?)", exc_info=True)


async def report_app_error(interaction: discord.Interaction,
                           error: app_commands.AppCommandError) -> None:
    """Turn a slash-command failure into a short ephemeral answer; log only real bugs.

    A refused admin check is expected traffic, not an error worth a stack trace.
    """
    if isinstance(error, NotAdminError):
        text = ADMIN_ONLY
    elif isinstance(error, app_commands.NoPrivateMessage):
        text = "이 명령은 서버 채널에서만 쓸 수 있어요."
    elif isinstance(error, app_commands.CheckFailure):
        text = "이 명령을 쓸 수 없어요."
    else:
        name = interaction.command.qualified_name if interaction.command else "?"
        log.error("slash command /%s failed", name, exc_info=error)
        text = ENGINE_FAILED
    await send_ephemeral(interaction, text)
