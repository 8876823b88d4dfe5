"""The Discord bot object: wiring, the shared answer path, start-up and command sync.

Every way in — a mention, a DM, an enabled channel, ``/recommend``, ``/mood``, the ⏭️ reaction,
the 다른 노래 / 더 신나게 / 더 잔잔하게 buttons — ends in the same two calls that live here:
:meth:`MoodtuneBot.answer` (``Recommender.respond`` with every failure turned into a sentence)
and :meth:`MoodtuneBot.deliver` (send the :class:`~bot.discord.render.Answer` wherever the
caller says: an embed with buttons and reactions, the forget confirmation, or a line). The
per-user :class:`~bot.ratelimit.RateLimiter` lives here too, so all of them draw on one budget
per person.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord.ext import commands

from bot import ratelimit
from bot.discord.render import (
    BOT_REACTIONS,
    ENGINE_FAILED,
    NOTE_NO_FEEDBACK,
    Answer,
    recommendation_embed,
)
from bot.discord.views import FeedbackButton, ForgetConfirmView, RefineButton, feedback_view
from bot.engine import Recommender, Reply
from bot.ratelimit import RateLimiter, SharedRateLimiter, rate_limiter_for
from bot.settings import Settings

log = logging.getLogger("moodtune.discord")

__all__ = ["Answer", "DiscordConfigError", "MoodtuneBot", "ShardedMoodtuneBot", "create_bot",
           "run_discord"]


#: How a caller sends: ``message.reply``, ``interaction.followup.send`` or ``channel.send``
#: with their fixed arguments bound; called with ``content`` / ``embed`` / ``view``.
Send = Callable[..., Awaitable[Any]]


class DiscordConfigError(RuntimeError):
    """The bot cannot connect as configured (bad token, intent not enabled); says how to fix."""


class MoodtuneBot(commands.Bot):
    """``commands.Bot`` holding the engine, the settings and the shared rate limiter."""

    def __init__(self, recommender: Recommender, settings: Settings, *,
                 intents: discord.Intents, **options: Any) -> None:
        super().__init__(
            **options,
            command_prefix=commands.when_mentioned,  # required by Bot; no prefix commands exist
            intents=intents,
            help_command=None,
            # Song titles and user text are echoed back: never let them ping @everyone or roles.
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True,
                                                     replied_user=False),
        )
        self.recommender = recommender
        self.settings = settings
        # Shards of one process share this object; separate bot processes on one PostgreSQL
        # (SHARED_STATE) share the budget through the database.
        self.limiter: RateLimiter | SharedRateLimiter = rate_limiter_for(
            getattr(recommender, "store", None), settings.rate_limit_per_minute,
            shared=settings.resolved_shared_state, name="discord-messages")

    # ---- start-up -------------------------------------------------------------------------
    async def setup_hook(self) -> None:
        """Runs once after login, before the gateway connects: cogs, buttons, slash commands."""
        await self.add_features()
        await self.sync_commands()

    async def add_features(self) -> None:
        """Register the cogs and the persistent feedback buttons (once per bot object)."""
        from bot.discord.admin import AdminCog
        from bot.discord.chat import ChatCog
        from bot.discord.commands import UserCommands

        # Buttons on messages sent before this process started route here by custom_id regex.
        self.add_dynamic_items(FeedbackButton, RefineButton)
        await self.add_cog(ChatCog(self))
        await self.add_cog(UserCommands(self))
        await self.add_cog(AdminCog(self))

    async def sync_commands(self) -> None:
        """Push slash commands to Discord: per dev guild (instant) or globally (up to an hour).

        ``DISCORD_DEV_GUILD_IDS`` marks development: commands are copied into those guilds only,
        so edits show up at once and the global list is not churned. A failed sync (e.g. the
        bot was invited without the ``applications.commands`` scope) is logged, not fatal: the
        chat side works without slash commands.
        """
        try:
            if self.settings.discord_dev_guild_ids:
                for guild_id in self.settings.discord_dev_guild_ids:
                    guild = discord.Object(id=guild_id)
                    self.tree.copy_global_to(guild=guild)
                    synced = await self.tree.sync(guild=guild)
                    log.info("synced %d slash commands to dev guild %s", len(synced), guild_id)
            else:
                synced = await self.tree.sync()
                log.info("synced %d slash commands globally", len(synced))
        except discord.HTTPException as exc:
            log.warning("slash command sync failed (%s); re-invite the bot with the "
                        "applications.commands scope (README, section Discord)", exc)

    async def on_message(self, message: discord.Message) -> None:
        """No prefix commands: conversation is :class:`~bot.discord.chat.ChatCog`'s listener.

        ``commands.Bot``'s default would try to parse "@bot 우울해" as a command named 우울해
        and raise CommandNotFound for every mention.
        """

    # ---- the shared answer path -----------------------------------------------------------
    async def answer(self, user_id: str, text: str) -> Answer:
        """``Recommender.respond`` for Discord; every failure becomes a polite sentence.

        ``respond`` already turns what a person can cause (too long, busy, bad feedback) into a
        Reply; this only catches the unexpected, so a bug never leaves someone without an answer.
        """
        try:
            reply = await self.recommender.respond(user_id, text, channel="discord")
        except Exception:
            log.exception("respond failed")
            reply = Reply("error", ENGINE_FAILED)
        return Answer.of(reply)

    async def deliver(self, send: Send, answer: Answer, *, owner_id: int,
                      origin: discord.Interaction | None = None) -> discord.Message | None:
        """Send ``answer`` through ``send``; the sent message, or None if Discord refused it.

        A recommendation goes out with its buttons, then is linked to its rec id and gets the
        reactions; a privacy request gets the confirm buttons, which only ``owner_id`` may press.
        A missing permission or an expired interaction is logged, not raised: the handler that
        called us has nothing better to do with it.
        """
        kwargs: dict[str, Any] = {}
        view: discord.ui.View | None = None
        if answer.confirm:
            view = ForgetConfirmView(self, owner_id, origin=origin)
        elif answer.embed is not None:
            view = feedback_view(answer.reply)
        if answer.content is not None:
            kwargs["content"] = answer.content
        if answer.embed is not None:
            kwargs["embed"] = answer.embed
        if view is not None:
            kwargs["view"] = view
        try:
            message = await send(**kwargs)
        except discord.HTTPException:
            log.warning("could not send an answer", exc_info=True)
            return None
        if message is None:
            return None
        if isinstance(view, ForgetConfirmView):
            view.prompt = message
        elif answer.embed is not None:
            await self.attach_feedback(message, answer.reply)
        return message

    async def is_current_thread(self, user_id: str, rec_id: str) -> bool:
        """Whether ``rec_id`` is ``user_id``'s latest answer — what "다른 거" refines.

        A lookup failure counts as "yes": the engine then refines its own idea of the thread,
        which is this answer in all but a rare race, and the person still gets their songs.
        """
        try:
            last = await self.recommender.last_answer(user_id)
        except Exception:
            log.warning("last answer unavailable; continuing the thread anyway", exc_info=True)
            return True
        return last is not None and getattr(last, "rec_id", None) == rec_id

    async def attach_feedback(self, message: discord.Message, reply: Reply) -> bool:
        """Link ``message`` to ``reply``'s rec id and add the reactions; False if feedback is off.

        The link is what lets ``on_raw_reaction_add`` find the rec id for messages discord.py no
        longer caches (after a restart, or hours later). If the store cannot take it, the reply
        is edited to say feedback will not be saved instead of silently dropping reactions.
        """
        if self.recommender.store is None or not reply.rec_id:
            return False
        try:
            await self.recommender.link_message(message.id, reply.rec_id)
        except Exception:
            log.warning("could not link message to %s; feedback disabled for it", reply.rec_id,
                        exc_info=True)
            try:
                await message.edit(embed=recommendation_embed(reply, note=NOTE_NO_FEEDBACK),
                                   view=None)
            except discord.HTTPException:
                log.warning("could not edit the reply to say feedback is off", exc_info=True)
            return False
        for emoji in BOT_REACTIONS:
            try:
                await message.add_reaction(emoji)
            except discord.HTTPException as exc:  # no Add Reactions permission, or gone
                log.info("could not add reactions to a reply (%s); buttons still work", exc)
                break
        return True

    async def forget(self, user_id: str) -> dict[str, int]:
        """Delete everything stored about ``user_id`` (``/forget-me``) and reset their budget."""
        counts = await self.recommender.forget_user(user_id)
        await ratelimit.reset(self.limiter, user_id)
        return counts


class ShardedMoodtuneBot(MoodtuneBot, commands.AutoShardedBot):
    """:class:`MoodtuneBot` on ``AutoShardedBot``: one process, ``DISCORD_SHARD_COUNT`` gateway
    connections. Discord requires sharding from 2,500 servers; the cogs and the answer path
    are the same, only the gateway side (``AutoShardedClient``) differs."""


def create_bot(recommender: Recommender, settings: Settings) -> MoodtuneBot:
    """A configured, not yet connected bot (tests drive it offline with dpytest).

    Message Content is a privileged intent: it must also be switched on in the Developer Portal
    (README → Discord), or the gateway refuses the connection. ``DISCORD_SHARD_COUNT`` set →
    a :class:`ShardedMoodtuneBot` with that many shards; unset → the plain single-connection
    bot (what dpytest drives, and all a small bot needs).
    """
    intents = discord.Intents.default()
    intents.message_content = True
    if settings.discord_shard_count is not None:
        return ShardedMoodtuneBot(recommender, settings, intents=intents,
                                  shard_count=settings.discord_shard_count)
    return MoodtuneBot(recommender, settings, intents=intents)


async def run_discord(recommender: Recommender, settings: Settings) -> None:
    """Connect and serve until cancelled. Reconnects are discord.py's (``reconnect=True``).

    The token is read only here and only handed to discord.py; it is never logged or put into
    an exception message.
    """
    if settings.discord_token is None:
        raise DiscordConfigError("DISCORD_TOKEN is not set; put the bot token from the Developer "
                                 "Portal (Bot → Reset Token) into .env")
    bot = create_bot(recommender, settings)
    try:
        async with bot:
            await bot.start(settings.discord_token.get_secret_value(), reconnect=True)
    except discord.LoginFailure:
        raise DiscordConfigError(
            "Discord rejected DISCORD_TOKEN; reset the token in the Developer Portal (Bot → "
            "Reset Token) and update .env") from None
    except discord.PrivilegedIntentsRequired:
        raise DiscordConfigError(
            "the Message Content intent is not enabled for this bot; Developer Portal → your "
            "application → Bot → Privileged Gateway Intents → Message Content Intent → Save"
        ) from None
