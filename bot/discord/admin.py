"""Admin slash commands: /reindex, /retrain, /stats and /channel enable|disable|list.

Two layers guard them. ``default_permissions(manage_guild=True)`` hides them in the Discord UI
from members without Manage Server — but a guild owner can override that per role or channel,
and it does not apply to configured bot operators without the permission. So every command also
runs :func:`admin_only`, which accepts Manage Server *or* an id in ``DISCORD_ADMIN_USER_IDS`` /
``DISCORD_ADMIN_ROLE_IDS``, and a refusal becomes an ephemeral "관리자만 쓸 수 있어요".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.render import (
    CF_UNAVAILABLE,
    STORE_UNAVAILABLE,
    channel_list_text,
    channel_toggle_text,
    reindex_done_text,
    retrain_done_text,
    stats_embed,
)
from bot.discord.replies import NotAdminError, report_app_error, send_ephemeral

if TYPE_CHECKING:
    from bot.discord.app import MoodtuneBot

log = logging.getLogger("moodtune.discord")

__all__ = ["AdminCog", "admin_only", "is_admin"]

T = TypeVar("T")


def is_admin(user: discord.abc.User | Any, *, admin_user_ids: Collection[int],
             admin_role_ids: Collection[int]) -> bool:
    """Manage Server in this guild, or a configured operator (by user id or role id).

    Only a real :class:`discord.Permissions` counts: anything else (a DM ``User``, a test
    double) is treated as "no permission" rather than guessed at.
    """
    if getattr(user, "id", None) in admin_user_ids:
        return True
    roles = getattr(user, "roles", None) or ()
    if any(getattr(role, "id", None) in admin_role_ids for role in roles):
        return True
    perms = getattr(user, "guild_permissions", None)
    return isinstance(perms, discord.Permissions) and perms.manage_guild


def admin_only() -> Callable[[T], T]:
    """``app_commands`` check: :func:`is_admin` with the bot's settings, else NotAdminError."""

    def predicate(interaction: discord.Interaction) -> bool:
        settings = interaction.client.settings  # type: ignore[attr-defined]
        if is_admin(interaction.user, admin_user_ids=settings.discord_admin_user_ids,
                    admin_role_ids=settings.discord_admin_role_ids):
            return True
        raise NotAdminError("admin only")

    return app_commands.check(predicate)


_MANAGE_GUILD = discord.Permissions(manage_guild=True)


class AdminCog(commands.Cog, name="admin"):
    """Operator commands; long ones defer and report progress, then the result."""

    channel = app_commands.Group(
        name="channel", description="이 채널에서 멘션 없이 대답할지 정해요 (관리자)",
        guild_only=True, default_permissions=_MANAGE_GUILD)

    def __init__(self, bot: MoodtuneBot) -> None:
        self.bot = bot
        # One rebuild at a time: a second /reindex while one runs is told so, not queued.
        self._reindexing = asyncio.Lock()
        self._retraining = asyncio.Lock()

    @app_commands.command(name="reindex", description="카탈로그에서 검색 인덱스를 다시 만들어요 (관리자)")
    @app_commands.default_permissions(manage_guild=True)
    @admin_only()
    async def reindex(self, interaction: discord.Interaction) -> None:
        if self._reindexing.locked():
            await send_ephemeral(interaction, "⏳ 이미 인덱스를 다시 만드는 중이에요.")
            return
        async with self._reindexing:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send(
                "⏳ 인덱스를 다시 만드는 중이에요. 그동안에도 추천은 계속돼요…", ephemeral=True)
            try:
                result = await self.bot.recommender.reload_index()
            except Exception as exc:
                log.exception("reindex failed")
                await interaction.followup.send(
                    f"❌ 인덱스를 다시 만들지 못했어요: {exc}\n이전 인덱스로 계속 추천해요.",
                    ephemeral=True)
                return
            await interaction.followup.send(reindex_done_text(result), ephemeral=True)

    @app_commands.command(name="retrain", description="피드백으로 협업 필터링 모델을 다시 학습해요 (관리자)")
    @app_commands.default_permissions(manage_guild=True)
    @admin_only()
    async def retrain(self, interaction: discord.Interaction) -> None:
        # An engine without CF support (the cog also runs against stripped-down engines) says so.
        retrain_cf = getattr(self.bot.recommender, "retrain_cf", None)
        if not callable(retrain_cf):
            await send_ephemeral(interaction, CF_UNAVAILABLE)
            return
        if self._retraining.locked():
            await send_ephemeral(interaction, "⏳ 이미 CF 모델을 학습하는 중이에요.")
            return
        async with self._retraining:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send("⏳ CF 모델을 학습하는 중이에요…", ephemeral=True)
            try:
                result = await retrain_cf()
            except Exception as exc:
                log.exception("CF retraining failed")
                await interaction.followup.send(
                    f"❌ CF 학습에 실패했어요: {exc}\n지금 모델로 계속 추천해요.", ephemeral=True)
                return
            await interaction.followup.send(retrain_done_text(result), ephemeral=True)

    @app_commands.command(name="stats", description="사용자·추천·피드백 통계를 봐요 (관리자)")
    @app_commands.default_permissions(manage_guild=True)
    @admin_only()
    async def stats(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        recommender = self.bot.recommender
        if recommender.store is None:
            await interaction.followup.send(STORE_UNAVAILABLE, ephemeral=True)
            return
        try:
            numbers = await recommender.stats()
        except Exception:
            log.warning("stats unavailable", exc_info=True)
            await interaction.followup.send(STORE_UNAVAILABLE, ephemeral=True)
            return
        embed = stats_embed(numbers, songs=len(recommender.index),
                            cf_loaded=recommender.cf is not None)
        await interaction.followup.send(embed=embed, ephemeral=True)

    @channel.command(name="enable", description="이 채널에서는 멘션 없이도 대답해요")
    @admin_only()
    async def channel_enable(self, interaction: discord.Interaction) -> None:
        await self._set_channel(interaction, True)

    @channel.command(name="disable", description="이 채널에서는 멘션할 때만 대답해요")
    @admin_only()
    async def channel_disable(self, interaction: discord.Interaction) -> None:
        await self._set_channel(interaction, False)

    @channel.command(name="list", description="멘션 없이 대답하는 채널을 보여 줘요")
    @admin_only()
    async def channel_list(self, interaction: discord.Interaction) -> None:
        if self.bot.recommender.store is None or interaction.guild_id is None:
            await send_ephemeral(interaction, STORE_UNAVAILABLE)
            return
        try:
            ids = await self.bot.recommender.enabled_channels(interaction.guild_id)
        except Exception:
            log.warning("channel list unavailable", exc_info=True)
            await send_ephemeral(interaction, STORE_UNAVAILABLE)
            return
        await send_ephemeral(interaction, channel_list_text(ids))

    async def _set_channel(self, interaction: discord.Interaction, enabled: bool) -> None:
        if (self.bot.recommender.store is None or interaction.guild_id is None
                or interaction.channel_id is None):
            await send_ephemeral(interaction, STORE_UNAVAILABLE)
            return
        try:
            await self.bot.recommender.set_channel_enabled(interaction.guild_id,
                                                           interaction.channel_id, enabled)
        except Exception:
            log.warning("channel setting not saved", exc_info=True)
            await send_ephemeral(interaction, STORE_UNAVAILABLE)
            return
        await send_ephemeral(interaction, channel_toggle_text(enabled))

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        await report_app_error(interaction, error)
