"""The Discord bot end to end, offline: dpytest for messages and reactions, fake interactions
for slash commands and buttons, and the real engine + SQLite store underneath.

What these tests pin down is behaviour a user or an operator would notice: who the bot answers,
what lands in the store (and what does not — the bot's own reactions, a forgotten user), that
every way in goes through ``Recommender.respond`` (genre requests, refinements, privacy words,
chatter the bot stays quiet on), that ⏭️ and the 다른 노래 / 더 신나게 buttons continue the thread,
that admin commands refuse non-admins, that recommending keeps working while the index is
rebuilt, and that buttons still work after a restart.

New-behaviour tests import only names that existed before issue 12, so run against the old
adapter they fail one by one on what they check rather than all at once on an import.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import discord.ext.test as dpytest
import pytest

import bot.engine as engine_mod
from bot.dialogue import SMALLTALK
from bot.discord import DiscordConfigError, create_bot, run_discord
from bot.discord.admin import AdminCog
from bot.discord.app import Answer, MoodtuneBot
from bot.discord.chat import ChatCog
from bot.discord.commands import MOOD_CHOICES, UserCommands
from bot.discord.render import (
    ADMIN_ONLY,
    BOT_REACTIONS,
    CF_UNAVAILABLE,
    EMPTY_MESSAGE,
    ENGINE_FAILED,
    FEEDBACK_NOT_SAVED,
    FEEDBACK_UNKNOWN,
    NOTE_NO_FEEDBACK,
    user_key,
)
from bot.discord.replies import NotAdminError
from bot.discord.views import FeedbackButton, ForgetConfirmView, feedback_custom_id
from bot.engine import Recommender
from bot.feedback import Signal
from bot.ratelimit import RateLimiter
from bot.store import StoreUnavailableError
from indexing.catalog import CatalogError
from inference.emotions import EMOTIONS
from tests.discord_shim import install_reaction_shim
from tests.fakes import KeywordClassifier, make_settings

ADMIN_ROLE = 424242424242424242
OPERATOR = 515151515151515151


# ---- fixtures -------------------------------------------------------------------------------
@pytest.fixture
async def engine(tmp_path) -> AsyncIterator[Recommender]:
    settings = make_settings(tmp_path, discord_admin_role_ids=[ADMIN_ROLE],
                             discord_admin_user_ids=[OPERATOR])
    rec = await Recommender.open(settings, classifier=KeywordClassifier())
    yield rec
    await rec.close()


def build_bot(rec: Recommender) -> MoodtuneBot:
    """The production bot object, plus the members intent dpytest needs to resolve <@id>."""
    intents = create_bot(rec, rec.settings).intents
    intents.members = True
    return MoodtuneBot(rec, rec.settings, intents=intents)


@pytest.fixture
async def bot(engine) -> AsyncIterator[MoodtuneBot]:
    install_reaction_shim()
    b = build_bot(engine)
    await b._async_setup_hook()  # dpytest's documented set-up for discord.py 2.x
    dpytest.configure(b, text_channels=2, members=3)
    b.tree.sync = AsyncMock(return_value=[])  # no gateway: keep setup_hook offline
    await b.setup_hook()
    yield b
    await dpytest.empty_queue()


def cog(b: MoodtuneBot, cls: type) -> Any:
    found = next((c for c in b.cogs.values() if isinstance(c, cls)), None)
    assert found is not None, f"{cls.__name__} not loaded"
    return found


def rec_id_of(embed: discord.Embed) -> str:
    """The rec id printed in the reply's footer (``rec <id> · …``)."""
    text = embed.footer.text or ""
    return text.split("rec ", 1)[1].split(" ", 1)[0]


async def feedback_rows(store: Any) -> list[tuple[str, str, str, str]]:
    return [(u, s, sig, scope) for u, s, sig, scope, _ in await store.feedback_events()]


_ids = itertools.count(900_000_000_000_000_000)


class FakeInteraction:
    """Factory for ``MagicMock(spec=discord.Interaction)`` with a response that tracks state.

    ``response.is_done()`` must flip after the first answer, as on Discord, otherwise code that
    chooses between ``response`` and ``followup`` is not exercised honestly.
    """

    @staticmethod
    def make(b: MoodtuneBot, *, user_id: int | None = None, roles: tuple[int, ...] = (),
             perms: discord.Permissions | None = None, guild_id: int | None = 1,
             channel_id: int | None = 2) -> MagicMock:
        inter = MagicMock(spec=discord.Interaction)
        inter.client = b
        user = MagicMock(spec=discord.Member)
        user.id = user_id if user_id is not None else next(_ids)
        user.roles = [discord.Object(id=r) for r in roles]
        user.guild_permissions = perms if perms is not None else discord.Permissions.none()
        inter.user = user
        inter.guild_id = guild_id
        inter.channel_id = channel_id
        inter.command = None
        inter.log = []  # ("defer"|"send_message"|"followup"|"edit", kwargs)
        done = {"v": False}

        def answered(kind: str):
            async def effect(*args: Any, **kwargs: Any) -> None:
                if done["v"]:
                    raise discord.InteractionResponded(inter)
                done["v"] = True
                inter.log.append((kind, {"args": args, **kwargs}))
            return effect

        async def followup(*args: Any, **kwargs: Any) -> MagicMock:
            msg = MagicMock(spec=discord.WebhookMessage)
            msg.id = next(_ids)
            msg.add_reaction = AsyncMock()
            msg.edit = AsyncMock()
            inter.log.append(("followup", {"args": args, "message": msg, **kwargs}))
            return msg

        async def edit_original(**kwargs: Any) -> None:
            inter.log.append(("edit", kwargs))

        response = MagicMock()
        response.is_done = lambda: done["v"]
        response.defer = AsyncMock(side_effect=answered("defer"))
        response.send_message = AsyncMock(side_effect=answered("send_message"))
        response.edit_message = AsyncMock(side_effect=answered("edit_message"))
        inter.response = response
        inter.followup = MagicMock()
        inter.followup.send = AsyncMock(side_effect=followup)
        inter.edit_original_response = AsyncMock(side_effect=edit_original)
        return inter


def kinds(inter: MagicMock) -> list[str]:
    return [k for k, _ in inter.log]


def texts(inter: MagicMock) -> list[str]:
    out = []
    for _, kw in inter.log:
        content = kw.get("content") or (kw["args"][0] if kw.get("args") else None)
        if content:
            out.append(content)
    return out


def followup_embeds(inter: MagicMock) -> list[discord.Embed]:
    return [kw["embed"] for k, kw in inter.log if k == "followup" and kw.get("embed")]


def spy_respond(engine: Recommender, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Record every ``respond(user, text, channel=…)`` call (and still run the real one)."""
    said: list[tuple] = []
    real = engine.respond

    async def spy(user_id: str, text: str, **kwargs: Any) -> Any:
        said.append((user_id, text, kwargs.get("channel")))
        reply = await real(user_id, text, **kwargs)
        spy.replies.append(reply)  # type: ignore[attr-defined]
        return reply

    spy.replies = []  # type: ignore[attr-defined]
    monkeypatch.setattr(engine, "respond", spy)
    return said


def button_labelled(view: discord.ui.View, label: str) -> Any:
    found = [b for b in view.children if getattr(getattr(b, "item", b), "label", None) == label]
    assert found, f"no {label!r} button under the answer"
    return found[0]


# ---- who the bot talks to -------------------------------------------------------------------
async def test_mention_gets_embed_reply_linked_to_its_recommendation(bot, engine):
    member = dpytest.get_config().members[0]
    await dpytest.message(f"<@{bot.user.id}> 오늘 너무 지치고 우울해", channel=0, member=0)
    reply = dpytest.get_message()
    embed = reply.embeds[0]
    assert embed.fields[0].value.splitlines()[0].startswith("😢 슬픔 ")
    assert embed.description.count("](https://") == 5  # five tracks, titles as links
    rec_id = rec_id_of(embed)
    stored = await engine.store.recommendation(rec_id)
    assert stored.user_id == user_key(member.id) and stored.channel == "discord"
    assert await engine.store.rec_for_message(reply.id) == rec_id
    # The bot offers the four feedback reactions, and its own reactions are not feedback.
    assert [str(r.emoji) for r in reply.reactions] == list(BOT_REACTIONS)
    assert all(r.me for r in reply.reactions)
    assert await feedback_rows(engine.store) == []
    # The message text itself is not kept (STORE_MESSAGE_TEXT defaults to false).
    assert stored.text is None


async def test_dm_is_answered_without_a_mention(bot):
    member = dpytest.get_config().members[1]
    dm = await member.create_dm()
    await dpytest.message("너무 신나는 하루였어", channel=dm, member=member)
    reply = dpytest.get_message()
    assert isinstance(reply.channel, discord.DMChannel)
    assert reply.embeds[0].fields[0].value.startswith("😄 기쁨")


async def test_only_enabled_channels_are_answered_without_a_mention(bot, engine):
    cfg = dpytest.get_config()
    enabled, other = cfg.channels[0], cfg.channels[1]
    admin = cog(bot, AdminCog)
    inter = FakeInteraction.make(bot, perms=discord.Permissions(manage_guild=True),
                                 guild_id=enabled.guild.id, channel_id=enabled.id)
    enable = admin.channel.get_command("enable")
    await enable.callback(admin, inter)
    assert "멘션 없이도" in texts(inter)[0]

    await dpytest.message("오늘 좀 불안해", channel=enabled, member=0)
    assert dpytest.get_message().embeds[0].fields[0].value.startswith("😰 긴장")
    await dpytest.message("오늘 좀 불안해", channel=other, member=0)
    assert dpytest.verify().message().nothing()

    inter = FakeInteraction.make(bot, perms=discord.Permissions(manage_guild=True),
                                 guild_id=enabled.guild.id, channel_id=enabled.id)
    await admin.channel.get_command("disable").callback(admin, inter)
    await dpytest.message("오늘 좀 불안해", channel=enabled, member=0)
    assert dpytest.verify().message().nothing()
    assert await engine.store.enabled_channels(enabled.guild.id) == []


async def test_mention_without_text_gets_a_hint_and_unaddressed_messages_are_ignored(bot, engine):
    await dpytest.message(f"<@{bot.user.id}>", channel=0, member=0)
    assert dpytest.get_message().content == EMPTY_MESSAGE
    # A message that is not addressed to the bot is none of its business.
    await dpytest.message("그냥 잡담", channel=0, member=1)
    assert dpytest.verify().message().nothing()
    assert (await engine.store.stats())["recommendations"] == 0


async def test_other_bots_are_never_answered_and_their_reactions_do_not_count(bot, engine):
    """Two bots in one channel must not talk to (or rate) each other forever."""
    from discord.ext.test import backend, factories

    guild = dpytest.get_config().guilds[0]
    other_bot = backend.get_state().store_user(
        factories.make_user_dict("OtherBot", "0099", None, bot=True))
    robot = backend.make_member(other_bot, guild)
    await dpytest.message(f"<@{bot.user.id}> 우울해", channel=0, member=robot)
    assert dpytest.verify().message().nothing()
    await dpytest.message(f"<@{bot.user.id}> 우울해", channel=0, member=0)
    reply = dpytest.get_message()
    await dpytest.add_reaction(robot, reply, "👍")
    assert await feedback_rows(engine.store) == []


async def test_rate_limit_is_polite_once_then_quiet_then_lifts(bot):
    now = [1000.0]
    bot.limiter = RateLimiter(2, clock=lambda: now[0])
    mention = f"<@{bot.user.id}> 우울해"
    for _ in range(2):
        await dpytest.message(mention, channel=0, member=0)
        assert dpytest.get_message().embeds
    await dpytest.message(mention, channel=0, member=0)
    note = dpytest.get_message()
    assert not note.embeds and "천천히" in note.content and "60초" in note.content
    await dpytest.message(mention, channel=0, member=0)  # told once already: no second note
    assert dpytest.verify().message().nothing()
    await dpytest.message(mention, channel=0, member=1)  # someone else is unaffected
    assert dpytest.get_message().embeds
    now[0] += 61
    await dpytest.message(mention, channel=0, member=0)
    assert dpytest.get_message().embeds


async def test_long_input_is_refused_politely_and_nothing_is_stored(bot, engine):
    await dpytest.message(f"<@{bot.user.id}> " + "우울해 " * 800, channel=0, member=0)
    reply = dpytest.get_message()
    assert not reply.embeds and "너무 길어요" in reply.content
    assert (await engine.store.stats())["recommendations"] == 0


async def test_engine_failure_is_answered_and_the_bot_keeps_working(bot, engine, monkeypatch):
    monkeypatch.setattr(engine, "respond", AsyncMock(side_effect=RuntimeError("boom")))
    await dpytest.message(f"<@{bot.user.id}> 우울해", channel=0, member=0)
    assert dpytest.get_message().content == ENGINE_FAILED
    monkeypatch.undo()
    await dpytest.message(f"<@{bot.user.id}> 우울해", channel=0, member=0)
    assert dpytest.get_message().embeds


# ---- reactions ------------------------------------------------------------------------------
async def test_reactions_become_message_scoped_feedback_and_removal_withdraws_it(bot, engine):
    member = dpytest.get_config().members[0]
    other = dpytest.get_config().members[2]
    await dpytest.message(f"<@{bot.user.id}> 우울해", channel=0, member=0)
    reply = dpytest.get_message()
    rec = await engine.store.recommendation(rec_id_of(reply.embeds[0]))
    songs = set(rec.song_ids)

    await dpytest.add_reaction(member, reply, "👍")
    await dpytest.add_reaction(other, reply, "❤️")
    await dpytest.add_reaction(member, reply, "🎉")  # not a feedback emoji
    rows = await feedback_rows(engine.store)
    assert {(u, sig, scope) for u, _, sig, scope in rows} == {
        (user_key(member.id), "like", "message"), (user_key(other.id), "love", "message")}
    assert {s for u, s, sig, _ in rows if sig == "like"} == songs

    await dpytest.add_reaction(member, reply, "👍")  # re-delivered: idempotent
    assert len(await feedback_rows(engine.store)) == 10

    await dpytest.remove_reaction(member, reply, "👍")
    rows = await feedback_rows(engine.store)
    assert {(u, sig) for u, _, sig, _ in rows} == {(user_key(other.id), "love")}


async def test_reaction_on_an_uncached_message_still_counts(bot, engine):
    member = dpytest.get_config().members[0]
    await dpytest.message(f"<@{bot.user.id}> 화나", channel=0, member=0)
    reply = dpytest.get_message()
    bot._connection._messages.clear()  # as after a restart or hours later
    assert bot._connection._get_message(reply.id) is None
    await dpytest.add_reaction(member, reply, "👎")
    assert {sig for _, _, sig, _ in await feedback_rows(engine.store)} == {"dislike"}


async def test_reactions_on_other_messages_are_ignored(bot, engine):
    member = dpytest.get_config().members[0]
    plain = await dpytest.message("그냥 잡담", channel=0, member=1)
    await dpytest.add_reaction(member, plain, "👍")
    assert await feedback_rows(engine.store) == []


async def test_store_outage_during_reaction_is_told_not_raised(bot, engine, monkeypatch):
    member = dpytest.get_config().members[0]
    await dpytest.message(f"<@{bot.user.id}> 우울해", channel=0, member=0)
    reply = dpytest.get_message()
    monkeypatch.setattr(engine.store, "add_feedback",
                        AsyncMock(side_effect=StoreUnavailableError("database is locked")))
    await dpytest.add_reaction(member, reply, "👍")
    note = dpytest.get_message()
    assert FEEDBACK_NOT_SAVED in note.content and f"<@{member.id}>" in note.content


async def test_reply_says_feedback_is_off_when_the_link_cannot_be_stored(bot, engine,
                                                                          monkeypatch):
    monkeypatch.setattr(engine.store, "link_message",
                        AsyncMock(side_effect=StoreUnavailableError("read-only")))
    await dpytest.message(f"<@{bot.user.id}> 우울해", channel=0, member=0)
    reply = dpytest.get_message()
    edited = await reply.channel.fetch_message(reply.id)
    assert edited.embeds[0].footer.text.startswith(NOTE_NO_FEEDBACK)
    assert edited.embeds[0].description == reply.embeds[0].description  # answer still there
    assert reply.reactions == []  # no reactions offered that could not be saved


# ---- one conversation: everything through respond() ----------------------------------------
async def test_a_mention_asking_for_a_genre_gets_only_that_genre(bot, engine):
    await dpytest.message(f"<@{bot.user.id}> 힙합 노래 추천해줘", channel=0, member=0)
    embed = dpytest.get_message().embeds[0]
    stored = await engine.store.recommendation(rec_id_of(embed))
    assert len(stored.song_ids) == 5
    assert {engine.index.get(s).genre for s in stored.song_ids} == {"랩/힙합"}
    intro, tracks = embed.description.split("\n\n", 1)
    assert "힙합" in intro  # the answer says what it understood, before the songs
    assert tracks.count("· 랩/힙합") == 5


async def test_smalltalk_is_quiet_in_an_enabled_channel_and_costs_no_budget(bot, engine):
    channel = dpytest.get_config().channels[0]
    await engine.set_channel_enabled(channel.guild.id, channel.id, True)
    bot.limiter = RateLimiter(1)
    for chatter in ("ㅇㅋ", "ㅋㅋ", "ㅇㅇ 알겠어", "고마워"):
        await dpytest.message(chatter, channel=channel, member=0)
        assert dpytest.verify().message().nothing(), chatter
    await dpytest.message("오늘 좀 불안해", channel=channel, member=0)  # still within budget
    assert dpytest.get_message().embeds
    await dpytest.message("ㅇㅋ", channel=channel, member=0)  # after an answer, too
    assert dpytest.verify().message().nothing()
    assert (await engine.store.stats())["recommendations"] == 1


async def test_smalltalk_in_a_dm_or_a_mention_gets_a_friendly_line(bot, engine):
    member = dpytest.get_config().members[1]
    dm = await member.create_dm()
    await dpytest.message("고마워", channel=dm, member=member)
    line = dpytest.get_message()
    assert not line.embeds and line.content == SMALLTALK["thanks"]
    await dpytest.message(f"<@{bot.user.id}> ㅋㅋ", channel=0, member=0)
    line = dpytest.get_message()
    assert not line.embeds and line.content in SMALLTALK.values()
    assert (await engine.store.stats())["recommendations"] == 0


async def test_help_in_chat_also_explains_the_discord_buttons(bot):
    await dpytest.message(f"<@{bot.user.id}> 도움말", channel=0, member=0)
    text = dpytest.get_message().content
    assert "다른 노래" in text and "/mood" in text


async def test_skip_reaction_records_the_skip_and_posts_different_songs(bot, engine):
    cfg = dpytest.get_config()
    member, other = cfg.members[0], cfg.members[2]
    await dpytest.message(f"<@{bot.user.id}> 우울해", channel=0, member=0)
    first = dpytest.get_message()
    shown = await engine.store.recommendation(rec_id_of(first.embeds[0]))

    await dpytest.add_reaction(member, first, "⏭️")
    assert {(u, s, sig, scope) for u, s, sig, scope in await feedback_rows(engine.store)} == {
        (user_key(member.id), s, "skip", "message") for s in shown.song_ids}
    nxt = dpytest.get_message()
    assert nxt.embeds, "⏭️ should bring a new answer"
    again = await engine.store.recommendation(rec_id_of(nxt.embeds[0]))
    assert again.user_id == user_key(member.id) and len(again.song_ids) == 5
    assert not set(again.song_ids) & set(shown.song_ids)
    assert await engine.store.rec_for_message(nxt.id) == again.rec_id  # its reactions count

    # Someone else's ⏭️, or one on an answer that is no longer the latest, is feedback only.
    await dpytest.add_reaction(other, nxt, "⏭️")
    await dpytest.remove_reaction(member, first, "⏭️")
    await dpytest.add_reaction(member, first, "⏭️")
    assert dpytest.verify().message().nothing()
    assert (await engine.store.stats())["recommendations"] == 2


async def test_other_songs_button_answers_again_from_the_same_thread(bot, engine, monkeypatch):
    cmds = cog(bot, UserCommands)
    user = next(_ids)
    inter = FakeInteraction.make(bot, user_id=user)
    await cmds.recommend.callback(cmds, inter, "오늘 너무 우울해")
    first = await engine.store.recommendation(rec_id_of(followup_embeds(inter)[0]))
    button = button_labelled(inter.log[-1][1]["view"], "다른 노래")
    said = spy_respond(engine, monkeypatch)

    # Routed by custom_id alone, as after a restart.
    press = await _press(bot, button.custom_id, user, until="followup")
    assert kinds(press) == ["defer", "followup"] and press.log[0][1]["thinking"] is True
    assert said == [(user_key(user), "다른 거", "discord")]
    sent = press.log[1][1]
    again = await engine.store.recommendation(rec_id_of(sent["embed"]))
    assert again.user_id == user_key(user) and not set(again.song_ids) & set(first.song_ids)
    assert await engine.store.rec_for_message(sent["message"].id) == again.rec_id
    assert sent["view"] is not None  # the new answer has its own buttons

    # Not the presser's latest answer (a stranger, or the older one): told why, nothing sent.
    for who in (next(_ids), user):
        refused = await _press(bot, button.custom_id, who)
        assert kinds(refused) == ["send_message"] and refused.log[0][1]["ephemeral"] is True
        assert "가장 최근" in texts(refused)[0]
    assert len(said) == 1


async def test_more_upbeat_button_asks_respond_for_that_refinement(bot, engine, monkeypatch):
    cmds = cog(bot, UserCommands)
    user = next(_ids)
    inter = FakeInteraction.make(bot, user_id=user)
    await cmds.recommend.callback(cmds, inter, "오늘 너무 우울해")
    view = inter.log[-1][1]["view"]
    said = spy_respond(engine, monkeypatch)
    press = await _press(bot, button_labelled(view, "더 신나게").custom_id, user,
                         until="followup")
    assert said == [(user_key(user), "더 신나게", "discord")]
    reply = engine.respond.replies[0]
    assert reply.kind == "recommend" and reply.request.get("refinement") == "more_energy"
    assert followup_embeds(press)
    calmer = button_labelled(press.log[-1][1]["view"], "더 잔잔하게")
    await _press(bot, calmer.custom_id, user, until="followup")
    assert said[-1] == (user_key(user), "더 잔잔하게", "discord")
    assert engine.respond.replies[-1].request.get("refinement") == "calmer"


async def test_privacy_words_get_the_confirm_buttons_and_only_the_owner_can_delete(bot, engine):
    member = dpytest.get_config().members[0]
    await dpytest.message(f"<@{bot.user.id}> 우울해", channel=0, member=0)
    dpytest.get_message()
    await dpytest.message(f"<@{bot.user.id}> 내 기록 다 지워줘", channel=0, member=0)
    prompt = dpytest.get_message()
    assert not prompt.embeds and "지울까요" in prompt.content
    view = bot._connection._view_store._synced_message_views[prompt.id]
    assert isinstance(view, ForgetConfirmView)
    assert len(await engine.store.history(user_key(member.id), 10)) == 1  # nothing gone yet

    stranger = FakeInteraction.make(bot)
    assert await view.interaction_check(stranger) is False
    assert texts(stranger) and stranger.log[0][1]["ephemeral"] is True
    click = FakeInteraction.make(bot, user_id=member.id)
    assert await view.interaction_check(click) is True
    await view.confirm.callback(click)
    assert "지웠어요" in click.log[-1][1]["content"]
    assert await engine.store.history(user_key(member.id), 10) == []


async def test_an_unanswered_privacy_prompt_in_a_dm_expires(bot, engine):
    member = dpytest.get_config().members[1]
    dm = await member.create_dm()
    await dpytest.message("내 정보 삭제해줘", channel=dm, member=member)
    prompt = dpytest.get_message()
    view = bot._connection._view_store._synced_message_views[prompt.id]
    await view.on_timeout()
    edited = await prompt.channel.fetch_message(prompt.id)
    assert "그대로" in edited.content


async def test_slash_recommend_reads_privacy_words_too(bot, engine):
    cmds = cog(bot, UserCommands)
    user = next(_ids)
    inter = FakeInteraction.make(bot, user_id=user)
    await cmds.recommend.callback(cmds, inter, "내 기록 전부 삭제해줘")
    assert kinds(inter) == ["defer", "followup"]
    assert isinstance(inter.log[1][1]["view"], ForgetConfirmView)
    assert inter.log[1][1]["view"].owner_id == user



# ---- slash commands -------------------------------------------------------------------------
async def test_recommend_defers_then_answers_with_embed_buttons_and_link(bot, engine):
    cmds = cog(bot, UserCommands)
    inter = FakeInteraction.make(bot)
    await cmds.recommend.callback(cmds, inter, "오늘 너무 우울해")
    assert kinds(inter) == ["defer", "followup"]
    assert inter.log[0][1]["thinking"] is True
    sent = inter.log[1][1]
    rec_id = rec_id_of(sent["embed"])
    buttons = sent["view"].children
    # 👍 row, 👎 row, then [다른 노래][더 신나게][더 잔잔하게]: three of Discord's five rows.
    assert len(buttons) == 13 and {b.row for b in buttons} == {0, 1, 2}
    assert all(b.rec_id == rec_id for b in buttons)
    assert sum(isinstance(b, FeedbackButton) for b in buttons) == 10
    assert await engine.store.rec_for_message(sent["message"].id) == rec_id
    assert [c.args[0] for c in sent["message"].add_reaction.await_args_list] == list(
        BOT_REACTIONS)
    assert (await engine.store.recommendation(rec_id)).user_id == user_key(inter.user.id)


async def test_mood_offers_every_emotion_and_recommends_the_chosen_one(bot, engine,
                                                                      monkeypatch):
    assert [c.value for c in MOOD_CHOICES] == [e.ko for e in EMOTIONS]
    said = spy_respond(engine, monkeypatch)
    cmds = cog(bot, UserCommands)
    inter = FakeInteraction.make(bot)
    await cmds.mood.callback(cmds, inter, "평화")
    assert said == [(user_key(inter.user.id), "/mood 평화", "discord")]  # the Korean name
    embed = followup_embeds(inter)[0]
    assert "평화" in embed.title
    assert (await engine.store.recommendation(rec_id_of(embed))).source == "explicit"


async def test_mood_is_a_fresh_pick_not_a_refinement_of_the_last_answer(bot, engine):
    cmds = cog(bot, UserCommands)
    user = next(_ids)
    await cmds.recommend.callback(cmds, FakeInteraction.make(bot, user_id=user),
                                  "힙합 노래 추천해줘")
    inter = FakeInteraction.make(bot, user_id=user)
    await cmds.mood.callback(cmds, inter, "평화")
    embed = followup_embeds(inter)[0]
    assert "😌 평화" in embed.title and embed.fields[0].value.startswith("😌 평화")
    stored = await engine.store.recommendation(rec_id_of(embed))
    assert {engine.index.get(s).genre for s in stored.song_ids} != {"랩/힙합"}


async def test_slash_refusals_are_ephemeral_and_skip_the_engine(bot, engine):
    cmds = cog(bot, UserCommands)
    inter = FakeInteraction.make(bot)
    await cmds.recommend.callback(cmds, inter, "   ")
    assert kinds(inter) == ["send_message"] and inter.log[0][1]["ephemeral"] is True

    bot.limiter = RateLimiter(1)
    user = next(_ids)
    first = FakeInteraction.make(bot, user_id=user)
    await cmds.recommend.callback(cmds, first, "우울해")
    second = FakeInteraction.make(bot, user_id=user)
    await cmds.mood.callback(cmds, second, "기쁨")
    assert kinds(second) == ["send_message"] and second.log[0][1]["ephemeral"] is True
    assert "천천히" in texts(second)[0]
    assert (await engine.store.stats())["recommendations"] == 1


async def test_too_long_slash_input_is_explained(bot, engine):
    cmds = cog(bot, UserCommands)
    inter = FakeInteraction.make(bot)
    await cmds.recommend.callback(cmds, inter, "가" * (engine.settings.max_input_chars + 1))
    assert kinds(inter) == ["defer", "followup"] and "너무 길어요" in texts(inter)[0]


async def test_history_lists_the_users_own_recommendations(bot, engine):
    cmds = cog(bot, UserCommands)
    user = next(_ids)
    ids = []
    for text in ("우울해", "신나"):
        inter = FakeInteraction.make(bot, user_id=user)
        await cmds.recommend.callback(cmds, inter, text)
        ids.append(rec_id_of(followup_embeds(inter)[0]))
    await cmds.recommend.callback(cmds, FakeInteraction.make(bot), "화나")  # someone else
    inter = FakeInteraction.make(bot, user_id=user)
    await cmds.history.callback(cmds, inter)
    assert inter.log[0][1] == {"args": (), "ephemeral": True, "thinking": True}
    embed = followup_embeds(inter)[0]
    assert inter.log[1][1]["ephemeral"] is True
    lines = embed.description.splitlines()
    assert len(lines) == 2 and ids[1] in lines[0] and ids[0] in lines[1]
    assert "😄 기쁨" in lines[0]


def _cells_mentioning(db_path: str, needles: list[str]) -> list[tuple[str, tuple]]:
    """Every row of every table that contains one of ``needles`` anywhere."""
    found = []
    with sqlite3.connect(db_path) as con:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            for row in con.execute(f"SELECT * FROM {table}"):
                if any(n in str(cell) for cell in row for n in needles):
                    found.append((table, row))
    return found


async def test_forget_me_leaves_nothing_of_the_user_in_the_store(bot, engine):
    cmds = cog(bot, UserCommands)
    user, other = next(_ids), next(_ids)
    rec_ids, message_ids = [], []
    for text in ("우울해", "행복"):
        inter = FakeInteraction.make(bot, user_id=user)
        await cmds.recommend.callback(cmds, inter, text)
        rec_ids.append(rec_id_of(followup_embeds(inter)[0]))
        message_ids.append(str(inter.log[-1][1]["message"].id))
    await engine.feedback_answer(user_key(user), rec_ids[0], Signal.LIKE)
    await engine.feedback_answer(user_key(other), rec_ids[1], Signal.LOVE)  # someone else's
    await cmds.recommend.callback(cmds, FakeInteraction.make(bot, user_id=other), "화나")
    needles = [user_key(user), str(user), *rec_ids, *message_ids]
    assert _cells_mentioning(str(engine.settings.resolved_database_path), needles)

    inter = FakeInteraction.make(bot, user_id=user)
    await cmds.forget_me.callback(cmds, inter)
    assert kinds(inter) == ["send_message"] and inter.log[0][1]["ephemeral"] is True
    view = inter.log[0][1]["view"]
    stranger = FakeInteraction.make(bot)
    assert await view.interaction_check(stranger) is False  # only the owner may confirm
    click = FakeInteraction.make(bot, user_id=user)
    await view.confirm.callback(click)
    assert kinds(click) == ["defer", "edit"] and "지웠어요" in click.log[1][1]["content"]
    assert click.log[1][1]["view"] is None

    assert _cells_mentioning(str(engine.settings.resolved_database_path), needles) == []
    assert await engine.store.history(user_key(user), 10) == []
    # The other person's own answer and their reaction (now unlinked) remain theirs.
    remaining = await feedback_rows(engine.store)
    assert remaining and {u for u, *_ in remaining} == {user_key(other)}
    assert (await engine.store.stats())["users"] == 1


async def test_forget_me_cancel_keeps_everything(bot, engine):
    cmds = cog(bot, UserCommands)
    user = next(_ids)
    await cmds.recommend.callback(cmds, FakeInteraction.make(bot, user_id=user), "우울해")
    inter = FakeInteraction.make(bot, user_id=user)
    await cmds.forget_me.callback(cmds, inter)
    view = inter.log[0][1]["view"]
    click = FakeInteraction.make(bot, user_id=user)
    await view.cancel.callback(click)
    assert "취소" in click.log[0][1]["content"] and click.log[0][1]["view"] is None
    assert len(await engine.store.history(user_key(user), 10)) == 1
    # A prompt nobody answers expires: the question is replaced and its buttons removed.
    await view.on_timeout()
    assert inter.log[-1][0] == "edit" and inter.log[-1][1]["view"] is None
    assert "그대로" in inter.log[-1][1]["content"]


# ---- admin ----------------------------------------------------------------------------------
def _admin_commands(admin: AdminCog) -> list[discord.app_commands.Command]:
    return [c for c in admin.walk_app_commands() if isinstance(c, discord.app_commands.Command)]


async def test_every_admin_command_is_hidden_and_checked(bot):
    admin = cog(bot, AdminCog)
    commands = _admin_commands(admin)
    assert {c.qualified_name for c in commands} == {
        "reindex", "retrain", "stats", "channel enable", "channel disable", "channel list"}
    for command in commands:
        perms = command.default_permissions or command.parent.default_permissions
        assert perms is not None and perms.manage_guild, command.qualified_name
        refused = FakeInteraction.make(bot)
        with pytest.raises(NotAdminError):
            await command._check_can_run(refused)  # the path CommandTree takes


@pytest.mark.parametrize(("who", "allowed"), [
    ({}, False),
    ({"perms": discord.Permissions(send_messages=True, manage_messages=True)}, False),
    ({"roles": (123,)}, False),
    ({"guild_id": None}, False),  # a DM: no guild permissions at all
    ({"perms": discord.Permissions(manage_guild=True)}, True),
    ({"perms": discord.Permissions(administrator=True, manage_guild=True)}, True),
    ({"roles": (7, ADMIN_ROLE)}, True),
    ({"user_id": OPERATOR, "guild_id": None}, True),
])
async def test_admin_check_accepts_manage_server_or_configured_ids(bot, who, allowed):
    admin = cog(bot, AdminCog)
    inter = FakeInteraction.make(bot, **who)
    if allowed:
        assert await admin.stats._check_can_run(inter) is True
    else:
        with pytest.raises(NotAdminError):
            await admin.stats._check_can_run(inter)


async def test_refused_admin_gets_an_ephemeral_message(bot, engine, monkeypatch):
    admin = cog(bot, AdminCog)
    reload = AsyncMock()
    monkeypatch.setattr(engine, "reload_index", reload)
    inter = FakeInteraction.make(bot)
    try:
        await admin.reindex._check_can_run(inter)
    except NotAdminError as exc:
        await admin.cog_app_command_error(inter, exc)
    assert kinds(inter) == ["send_message"]
    assert inter.log[0][1] == {"args": (ADMIN_ONLY,), "ephemeral": True}
    reload.assert_not_awaited()


async def test_reindex_while_people_keep_asking(bot, engine, monkeypatch):
    """Recommendations complete while the rebuild is still running; then the new index serves."""
    started, release = threading.Event(), threading.Event()
    real_build = engine_mod._build_and_load

    def slow_build(*args: Any) -> Any:
        started.set()
        assert release.wait(20), "test never released the build"
        return real_build(*args)

    monkeypatch.setattr(engine_mod, "_build_and_load", slow_build)
    admin, cmds = cog(bot, AdminCog), cog(bot, UserCommands)
    old_index = engine.index
    op = FakeInteraction.make(bot, roles=(ADMIN_ROLE,))
    await admin.reindex._check_can_run(op)
    reindex = asyncio.create_task(admin.reindex.callback(admin, op))
    assert await asyncio.to_thread(started.wait, 20)
    assert kinds(op) == ["defer", "followup"] and op.log[0][1]["thinking"] is True
    assert "⏳" in texts(op)[0]

    again = FakeInteraction.make(bot, roles=(ADMIN_ROLE,))
    await admin.reindex.callback(admin, again)  # a second rebuild is not queued
    assert "이미" in texts(again)[0]

    users = [FakeInteraction.make(bot) for _ in range(8)]
    moods = ["우울해", "신나", "화나", "불안", "편안", "그냥 그래", "행복", "지치"]
    await asyncio.wait_for(asyncio.gather(
        *(cmds.recommend.callback(cmds, u, m) for u, m in zip(users, moods, strict=True))), 20)
    assert not reindex.done()  # all answered while the rebuild was in progress
    assert all(len(followup_embeds(u)) == 1 for u in users)

    release.set()
    await asyncio.wait_for(reindex, 30)
    assert "✅" in texts(op)[-1] and engine.index is not old_index
    after = FakeInteraction.make(bot)
    await cmds.recommend.callback(cmds, after, "우울해")
    assert followup_embeds(after)


async def test_failed_reindex_keeps_the_old_index(bot, engine, monkeypatch):
    def broken(*args: Any) -> Any:
        raise CatalogError("catalog.jsonl line 3: vector has 5 values")

    monkeypatch.setattr(engine_mod, "_build_and_load", broken)
    admin = cog(bot, AdminCog)
    old_index = engine.index
    inter = FakeInteraction.make(bot, perms=discord.Permissions(manage_guild=True))
    await admin.reindex.callback(admin, inter)
    assert "❌" in texts(inter)[-1] and "line 3" in texts(inter)[-1]
    assert engine.index is old_index


async def test_retrain_says_cf_is_not_available_until_the_engine_has_it(bot, engine,
                                                                         monkeypatch):
    admin = cog(bot, AdminCog)
    monkeypatch.delattr(Recommender, "retrain_cf", raising=False)  # an engine without CF
    assert not hasattr(engine, "retrain_cf")
    inter = FakeInteraction.make(bot, roles=(ADMIN_ROLE,))
    await admin.retrain.callback(admin, inter)
    assert kinds(inter) == ["send_message"] and texts(inter) == [CF_UNAVAILABLE]

    engine.retrain_cf = AsyncMock(return_value={"users": 3, "items": 40})
    inter = FakeInteraction.make(bot, roles=(ADMIN_ROLE,))
    await admin.retrain.callback(admin, inter)
    assert kinds(inter) == ["defer", "followup", "followup"]
    assert "users=3" in texts(inter)[-1]
    engine.retrain_cf.assert_awaited_once()


async def test_stats_shows_store_and_engine_numbers(bot, engine):
    cmds, admin = cog(bot, UserCommands), cog(bot, AdminCog)
    await cmds.recommend.callback(cmds, FakeInteraction.make(bot), "우울해")
    inter = FakeInteraction.make(bot, perms=discord.Permissions(manage_guild=True))
    await admin.stats.callback(admin, inter)
    fields = {f.name: f.value for f in followup_embeds(inter)[0].fields}
    assert fields["recommendations"] == "1" and fields["users"] == "1"
    assert fields["인덱스 곡 수"] == f"{len(engine.index):,}"
    assert inter.log[-1][1]["ephemeral"] is True


async def test_channel_list(bot, engine):
    admin = cog(bot, AdminCog)
    await engine.store.set_channel_enabled(1, 55, True)
    inter = FakeInteraction.make(bot, perms=discord.Permissions(manage_guild=True), guild_id=1)
    await admin.channel.get_command("list").callback(admin, inter)
    assert texts(inter) == ["멘션 없이 대답하는 채널: <#55>"]


# ---- buttons --------------------------------------------------------------------------------
async def _press(b: MoodtuneBot, custom_id: str, user_id: int, *,
                 until: str | None = None) -> MagicMock:
    """Route a button press the way discord.py does for a message it knows nothing about.

    The interaction carries the message with its components (as Discord sends it); the bot's
    view store matches the custom_id against registered DynamicItem templates, builds the item
    with ``from_custom_id`` and runs its ``callback``. Returns after the first answer, or after
    the first answer of kind ``until`` (a refinement defers first, then follows up).
    """
    inter = FakeInteraction.make(b, user_id=user_id)
    inter.data = {"custom_id": custom_id, "component_type": 2}
    channel = b.get_partial_messageable(4242)
    inter.message = discord.Message(state=b._connection, channel=channel, data={
        "id": next(_ids), "channel_id": 4242, "content": "", "timestamp": "2026-11-25T00:00:00+00:00",
        "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
        "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "type": 0,
        "flags": 0, "author": {"id": "1", "username": "moodtune", "discriminator": "0",
                               "avatar": None, "bot": True},
        "components": [{"type": 1, "components": [
            {"type": 2, "style": 3, "label": "1", "custom_id": custom_id}]}]})
    store = b._connection._view_store
    store.dispatch_view(2, custom_id, inter)
    for _ in range(1000):
        if inter.log and (until is None or until in kinds(inter)):
            break
        await asyncio.sleep(0.01)
    return inter


async def test_feedback_button_still_works_after_a_restart(tmp_path):
    settings = make_settings(tmp_path)
    # Process A: answer someone, then shut down completely (engine and store closed).
    engine_a = await Recommender.open(settings, classifier=KeywordClassifier())
    bot_a = create_bot(engine_a, settings)
    bot_a.tree.sync = AsyncMock(return_value=[])
    await bot_a.setup_hook()
    cmds = cog(bot_a, UserCommands)
    user = next(_ids)
    inter = FakeInteraction.make(bot_a, user_id=user)
    await cmds.recommend.callback(cmds, inter, "오늘 너무 우울해")
    sent = inter.log[-1][1]
    rec_id = rec_id_of(sent["embed"])
    second = next(b for b in sent["view"].children
                  if isinstance(b, FeedbackButton) and b.position == 1 and b.signal is Signal.LIKE)
    old_custom_id = second.custom_id
    await engine_a.close()

    # Process B: a fresh bot over the same database; it never saw that message.
    engine_b = await Recommender.open(settings, classifier=KeywordClassifier())
    try:
        bot_b = create_bot(engine_b, settings)
        bot_b.tree.sync = AsyncMock(return_value=[])
        await bot_b.setup_hook()
        press = await _press(bot_b, old_custom_id, user)
        assert kinds(press) == ["send_message"] and press.log[0][1]["ephemeral"] is True
        assert "좋아요" in texts(press)[0]
        song = (await engine_b.store.recommendation(rec_id)).song_at(1)
        assert await feedback_rows(engine_b.store) == [(user_key(user), song, "like", "track")]
        again = await _press(bot_b, old_custom_id, user)
        assert "이미" in texts(again)[0]
        assert len(await feedback_rows(engine_b.store)) == 1
    finally:
        await engine_b.close()


async def test_button_press_routing_needs_the_registration(engine):
    """Without ``add_dynamic_items`` (i.e. without setup_hook) an old button would be dead."""
    b = create_bot(engine, engine.settings)
    press = await _press(b, feedback_custom_id("ab12", 0, Signal.LIKE), next(_ids))
    assert press.log == []


async def test_button_on_unknown_answer_or_during_outage_explains(bot, engine, monkeypatch):
    user = next(_ids)
    ghost = FeedbackButton("deadbeef", 0, Signal.LIKE)
    inter = FakeInteraction.make(bot, user_id=user)
    await ghost.callback(inter)
    assert texts(inter) == [FEEDBACK_UNKNOWN]

    cmds = cog(bot, UserCommands)
    answered = FakeInteraction.make(bot, user_id=user)
    await cmds.recommend.callback(cmds, answered, "우울해")
    button = next(b for b in answered.log[-1][1]["view"].children
                  if isinstance(b, FeedbackButton) and b.position == 0
                  and b.signal is Signal.DISLIKE)  # 👎 on track 1
    monkeypatch.setattr(engine.store, "add_feedback",
                        AsyncMock(side_effect=StoreUnavailableError("database is locked")))
    inter = FakeInteraction.make(bot, user_id=user)
    await button.callback(inter)
    assert texts(inter) == [FEEDBACK_NOT_SAVED] and inter.log[0][1]["ephemeral"] is True


# ---- start-up -------------------------------------------------------------------------------
async def test_commands_sync_to_dev_guilds_or_globally(engine, tmp_path):
    dev = make_settings(tmp_path, discord_dev_guild_ids="11,22")
    b = create_bot(engine, dev)
    b.tree.sync = AsyncMock(return_value=[])
    await b.setup_hook()
    assert [c.kwargs["guild"].id for c in b.tree.sync.await_args_list] == [11, 22]
    names = {c.name for c in b.tree.get_commands(guild=discord.Object(id=22))}
    assert {"recommend", "mood", "history", "forget-me", "reindex", "channel"} <= names

    prod = create_bot(engine, engine.settings)
    prod.tree.sync = AsyncMock(return_value=[])
    await prod.setup_hook()
    prod.tree.sync.assert_awaited_once_with()
    fresh = create_bot(engine, engine.settings)
    assert fresh.intents.message_content is True
    # Song titles and user text are echoed: they must never ping @everyone or a role.
    assert fresh.allowed_mentions.everyone is False and fresh.allowed_mentions.roles is False


async def test_failed_sync_does_not_stop_the_bot(engine, caplog):
    b = create_bot(engine, engine.settings)
    response = MagicMock(status=403, reason="Forbidden")
    b.tree.sync = AsyncMock(side_effect=discord.Forbidden(response, "Missing Access"))
    await b.setup_hook()
    assert "applications.commands" in caplog.text
    assert cog(b, ChatCog) is not None


async def test_run_discord_hands_the_token_only_to_discord(engine, monkeypatch, tmp_path):
    with pytest.raises(DiscordConfigError, match="DISCORD_TOKEN"):
        await run_discord(engine, engine.settings)

    secret = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789"
    settings = make_settings(tmp_path, discord_token=secret)
    seen: list[str] = []

    async def fake_start(self: MoodtuneBot, token: str, *, reconnect: bool = True) -> None:
        seen.append(token)
        raise discord.LoginFailure("Improper token has been passed.")

    monkeypatch.setattr(MoodtuneBot, "start", fake_start)
    with pytest.raises(DiscordConfigError) as info:
        await run_discord(engine, settings)
    assert seen == [secret]
    assert secret not in str(info.value) and "Reset Token" in str(info.value)


async def test_answer_turns_every_failure_into_a_sentence(bot, engine, monkeypatch):
    ok = await bot.answer("discord:1", "슬픔")
    assert ok.kind == "recommend" and ok.embed is not None and ok.content is None
    too_long = await bot.answer("discord:1", "가" * (engine.settings.max_input_chars + 1))
    assert too_long.kind == "error" and "너무 길어요" in too_long.content
    monkeypatch.setattr(engine, "respond", AsyncMock(side_effect=ValueError("bad")))
    failed = await bot.answer("discord:1", "x")
    assert isinstance(failed, Answer) and failed.kind == "error"
    assert failed.content == ENGINE_FAILED and failed.embed is None
