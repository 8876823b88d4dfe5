"""Conversation: messages in, answers out; reactions on those answers become feedback.

The bot answers when it is mentioned, in DMs, and in channels an admin enabled with
``/channel enable`` — never to every message in every channel it can read. Every message goes
through ``Recommender.respond``; what it means is the engine's business. In an enabled channel,
where people also talk to each other, only messages that ask for or express something are
answered: "ㅇㅋ", "ㅋㅋ", "고마워" get silence there (a DM or a mention still gets the friendly
line). Reactions are handled through the *raw* events, which fire for every message, cached or
not, and the message id is mapped to the rec id through the store, so a 👍 on yesterday's
answer still counts; ⏭️ also asks for different songs.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Literal

import discord
from discord.ext import commands

from bot import ratelimit
from bot.discord.render import (
    EMPTY_MESSAGE,
    FEEDBACK_NOT_SAVED,
    rate_limited_text,
    reaction_signal,
    strip_bot_mention,
    user_key,
)
from bot.discord.views import OTHER_WORDS
from bot.engine import UnknownAnswerError
from bot.feedback import Signal
from inference.text import clean_text

if TYPE_CHECKING:
    from bot.discord.app import MoodtuneBot

log = logging.getLogger("moodtune.discord")

__all__ = ["ChatCog"]

Addressed = Literal["dm", "mention", "channel"]
_WARNED_MAX = 10_000


class ChatCog(commands.Cog, name="chat"):
    """Mentions, DMs and enabled channels → recommendation embeds; reactions → feedback."""

    def __init__(self, bot: MoodtuneBot) -> None:
        self.bot = bot
        # user -> monotonic time until which they were already told to slow down: one polite
        # note per refusal window, so a spammer does not get one reply per spam message.
        self._warned: dict[str, float] = {}

    # ---- messages -------------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot:
            return
        how = await self._addressed(message, me.id)
        if how is None:
            return
        text = strip_bot_mention(message.content, me.id)
        if not text:
            if how != "channel":  # "@bot" alone is a hello; silence in a chatty channel is fine
                await self._reply(message, content=EMPTY_MESSAGE)
            return
        user = user_key(message.author.id)
        if how == "channel" and await self._just_chatting(user, text):
            return
        wait = await ratelimit.hit(self.bot.limiter, user)
        if wait is not None:
            if self._first_warning(user, wait):
                await self._reply(message, content=rate_limited_text(wait))
            return
        answer = await self.bot.answer(user, text)
        if how == "channel" and answer.kind == "smalltalk":
            return  # the pre-check missed it (the thread changed in between): still stay quiet
        await self.bot.deliver(partial(self._reply, message), answer, owner_id=message.author.id)

    async def _just_chatting(self, user: str, text: str) -> bool:
        """True for smalltalk ("ㅇㅋ", "ㅋㅋ", "ㅇㅇ 알겠어", "고마워") in an enabled channel.

        Decided *before* the rate limiter with the engine's own reader (``bot.understand``,
        rules only, well under a millisecond, with the same "has a previous answer" flag
        ``respond`` uses), so chatter the bot ignores never costs the person any of their
        budget and never queues behind recommendations. The limiter has no refund, which is why
        this asks first instead of charging and paying back. If the reader fails, the message
        is answered as usual.
        """
        from bot.understand import understand

        engine = self.bot.recommender
        try:
            cleaned = clean_text(text)
            if len(cleaned) > engine.settings.max_input_chars:
                return False  # respond() explains the limit; that is not chatter
            has_thread = await engine.last_answer(user) is not None
            return understand(cleaned, engine.lexicon(), has_thread=has_thread).intent == "smalltalk"
        except Exception:
            log.warning("could not pre-read a channel message; answering it", exc_info=True)
            return False

    async def _addressed(self, message: discord.Message, my_id: int) -> Addressed | None:
        """Why the bot should answer this message, or None to stay quiet."""
        if message.guild is None:
            return "dm"
        # Not ``mentioned_in``: that is also true for @everyone, which is not talking to us.
        if any(u.id == my_id for u in message.mentions):
            return "mention"
        if self.bot.recommender.store is None:
            return None
        try:
            enabled = await self.bot.recommender.channel_enabled(message.guild.id,
                                                                 message.channel.id)
        except Exception:
            log.warning("channel settings unavailable; answering mentions and DMs only",
                        exc_info=True)
            return None
        return "channel" if enabled else None

    def _first_warning(self, user: str, wait: float) -> bool:
        now = time.monotonic()
        if now < self._warned.get(user, 0.0):
            return False
        if len(self._warned) >= _WARNED_MAX:
            self._warned = {k: v for k, v in self._warned.items() if v > now}
        self._warned[user] = now + wait
        return True

    async def _reply(self, message: discord.Message, *, content: str | None = None,
                     embed: discord.Embed | None = None,
                     view: discord.ui.View | None = None) -> discord.Message | None:
        """Reply without pinging; a missing permission is logged, not raised."""
        kwargs: dict = {"content": content, "embed": embed, "mention_author": False}
        if view is not None:
            kwargs["view"] = view
        try:
            return await message.reply(**kwargs)
        except discord.HTTPException:
            log.warning("could not reply in channel %s", message.channel.id, exc_info=True)
            return None

    # ---- reactions ------------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self._on_reaction(payload, added=True)

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self._on_reaction(payload, added=False)

    async def _on_reaction(self, payload: discord.RawReactionActionEvent, *, added: bool) -> None:
        me = self.bot.user
        if me is None or payload.user_id == me.id:
            return  # the bot's own four reactions under each reply
        if payload.member is not None and payload.member.bot:
            return
        signal = reaction_signal(payload.emoji.name if payload.emoji.is_unicode_emoji() else None)
        engine = self.bot.recommender
        if signal is None or engine.store is None:
            return
        user = user_key(payload.user_id)
        try:
            rec_id = await engine.answer_for_message(payload.message_id)
            if rec_id is None:
                return  # not one of our answers (or its owner used /forget-me)
            if not added:
                await engine.withdraw_feedback(user, rec_id, signal, channel="discord")
                return
            new = await engine.feedback_answer(user, rec_id, signal, channel="discord")
        except UnknownAnswerError:
            return  # the answer was deleted (/forget-me) after the message was linked
        except Exception:
            log.warning("reaction feedback not stored", exc_info=True)
            if added:
                await self._tell(payload.channel_id, f"<@{payload.user_id}> {FEEDBACK_NOT_SAVED}")
            return
        if signal is Signal.SKIP and new:
            await self._skip_to_next(payload, user, rec_id)

    async def _skip_to_next(self, payload: discord.RawReactionActionEvent, user: str,
                            rec_id: str) -> None:
        """⏭️ on someone's latest answer: post the next one of that thread, as a reply to it.

        Only for the answer's owner and only on their latest answer, for the reasons in
        :func:`bot.discord.views.continue_thread`; only when the skip was new, so a re-delivered
        reaction does not post twice. The skip (feedback) is free; the new answer is a
        recommendation and counts against the rate limit.
        """
        if not await self.bot.is_current_thread(user, rec_id):
            return
        wait = await ratelimit.hit(self.bot.limiter, user)
        if wait is not None:
            if self._first_warning(user, wait):
                await self._tell(payload.channel_id,
                                 f"<@{payload.user_id}> {rate_limited_text(wait)}")
            return
        answer = await self.bot.answer(user, OTHER_WORDS)
        channel = (self.bot.get_channel(payload.channel_id)
                   or self.bot.get_partial_messageable(payload.channel_id))
        send = partial(channel.send,  # type: ignore[union-attr]
                       reference=channel.get_partial_message(  # type: ignore[union-attr]
                           payload.message_id).to_reference(fail_if_not_exists=False),
                       mention_author=False)
        await self.bot.deliver(send, answer, owner_id=payload.user_id)

    async def _tell(self, channel_id: int, text: str) -> None:
        """A short-lived note in the channel: reactions have no ephemeral reply."""
        channel = self.bot.get_channel(channel_id) or self.bot.get_partial_messageable(channel_id)
        try:
            await channel.send(text, delete_after=30)  # type: ignore[union-attr]
        except discord.HTTPException:
            log.info("could not tell a user their feedback was not saved", exc_info=True)
