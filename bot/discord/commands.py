"""Slash commands for everyone: /recommend, /mood, /history, /forget-me.

``/recommend <text>`` and ``/mood <emotion>`` are two more ways into ``Recommender.respond``,
so they understand requests, refinements, feedback and privacy words exactly like a mention
does. ``/mood`` hands the engine ``"/mood 평화"`` (the mood's Korean name in the command form the
engine reads) rather than a bare ``"평화"``: a bare mood name after an answer is read as a
refinement of that answer and keeps its filters ("힙합" stays), while picking a mood from a menu
is a fresh request. Each command
answers within Discord's 3-second window by deferring before any engine or store work;
refusals (rate limit, empty text) are sent straight away and ephemerally so they do not clutter
the channel.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import ratelimit
from bot.discord.render import (
    EMPTY_MESSAGE,
    FORGET_PROMPT,
    STORE_UNAVAILABLE,
    history_embed,
    rate_limited_text,
    user_key,
)
from bot.discord.replies import report_app_error, send_ephemeral
from bot.discord.views import ForgetConfirmView
from inference.emotions import EMOTIONS

if TYPE_CHECKING:
    from bot.discord.app import MoodtuneBot

log = logging.getLogger("moodtune.discord")

__all__ = ["MOOD_CHOICES", "UserCommands"]

#: /mood choices, built from the one label table so a new mood appears here automatically.
MOOD_CHOICES: list[app_commands.Choice[str]] = [
    app_commands.Choice(name=f"{e.emoji} {e.ko} ({e.en})", value=e.ko) for e in EMOTIONS]
HISTORY_LIMIT = 10


class UserCommands(commands.Cog, name="moodtune"):
    """The commands every member can use."""

    def __init__(self, bot: MoodtuneBot) -> None:
        self.bot = bot

    @app_commands.command(name="recommend", description="지금 기분을 말하면 어울리는 노래를 골라 드려요")
    @app_commands.describe(text="지금 기분이나 오늘 있었던 일 (예: 오늘 너무 지치고 우울해)")
    async def recommend(self, interaction: discord.Interaction, text: str) -> None:
        await self._respond(interaction, text)

    @app_commands.command(name="mood", description="분위기를 골라 바로 추천받아요")
    @app_commands.describe(emotion="듣고 싶은 분위기")
    @app_commands.choices(emotion=MOOD_CHOICES)
    async def mood(self, interaction: discord.Interaction, emotion: str) -> None:
        await self._respond(interaction, f"/mood {emotion}")

    async def _respond(self, interaction: discord.Interaction, text: str) -> None:
        if not text.strip():
            await send_ephemeral(interaction, EMPTY_MESSAGE)
            return
        user = user_key(interaction.user.id)
        wait = await ratelimit.hit(self.bot.limiter, user)
        if wait is not None:
            await send_ephemeral(interaction, rate_limited_text(wait))
            return
        await interaction.response.defer(thinking=True)
        answer = await self.bot.answer(user, text)
        await self.bot.deliver(partial(interaction.followup.send, wait=True), answer,
                               owner_id=interaction.user.id, origin=interaction)

    @app_commands.command(name="history", description="최근에 받은 추천을 봐요 (나만 보여요)")
    async def history(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        if self.bot.recommender.store is None:
            await interaction.followup.send(STORE_UNAVAILABLE, ephemeral=True)
            return
        try:
            entries = await self.bot.recommender.history(user_key(interaction.user.id),
                                                         HISTORY_LIMIT)
        except Exception:
            log.warning("history unavailable", exc_info=True)
            await interaction.followup.send(STORE_UNAVAILABLE, ephemeral=True)
            return
        index = self.bot.recommender.index

        def title_of(song_id: str) -> str | None:
            song = index.get(song_id)
            return song.title if song is not None else None

        await interaction.followup.send(embed=history_embed(entries, title_of), ephemeral=True)

    @app_commands.command(name="forget-me", description="내 추천·피드백 기록을 모두 지워요")
    async def forget_me(self, interaction: discord.Interaction) -> None:
        view = ForgetConfirmView(self.bot, interaction.user.id, origin=interaction)
        await interaction.response.send_message(FORGET_PROMPT, view=view, ephemeral=True)

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        await report_app_error(interaction, error)
