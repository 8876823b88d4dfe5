"""Pure rendering for the Discord bot: bars, embeds, buttons, texts — no gateway, no store."""

from __future__ import annotations

import re

import discord
import pytest

from bot.discord.admin import is_admin
from bot.discord.render import (
    BOT_REACTIONS,
    DISCORD_HELP,
    ENGINE_FAILED,
    FORGET_PROMPT,
    NOTE_NO_FEEDBACK,
    Answer,
    button_ack,
    channel_list_text,
    forget_done_text,
    history_embed,
    mood_bar,
    mood_lines,
    rate_limited_text,
    reaction_signal,
    recommendation_embed,
    reindex_done_text,
    retrain_done_text,
    stats_embed,
    strip_bot_mention,
    user_key,
)
from bot.discord.views import (
    FEEDBACK_TEMPLATE,
    MAX_BUTTON_ROWS,
    REFINE_TEMPLATE,
    REFINEMENTS,
    FeedbackButton,
    RefineButton,
    feedback_custom_id,
    feedback_view,
    refine_custom_id,
)
from bot.engine import Reply, Track
from bot.feedback import BUTTONS, REACTIONS, Signal
from bot.store import StoredItem, StoredRecommendation
from inference.emotions import LABELS, NUM_EMOTIONS, index_of


def vec(**shares: float) -> tuple[float, ...]:
    v = [0.0] * NUM_EMOTIONS
    for name, p in shares.items():
        v[index_of(name)] = p
    return tuple(v)


def track(n: int, **kw) -> Track:
    base = dict(song_id=f"s{n}", title=f"노래 {n}", artist=f"가수 {n}", score=0.9,
                vector=vec(sadness=1.0), reason=f"이유 {n}", link=f"https://example.com/{n}")
    base.update(kw)
    return Track(**base)


INTRO = "지금 기분: 😢 슬픔 68%\n지금 마음에 어울리는 노래예요."


def rec(n_tracks: int = 5, source: str = "text", **kw) -> Reply:
    """A "recommend" Reply as ``Recommender.respond`` returns it."""
    return Reply("recommend", kw.pop("text", INTRO),
                 tracks=kw.pop("tracks", [track(i) for i in range(1, n_tracks + 1)]),
                 emotion=kw.pop("emotion", vec(sadness=0.68, peace=0.2, joy=0.12)),
                 rec_id=kw.pop("rec_id", "0123456789abcdef"), source=source, **kw)


# ---- mood bars ------------------------------------------------------------------------------
def test_mood_bar_rounds_to_the_nearest_cell_and_clamps():
    assert mood_bar(0.68) == "███████░░░"
    assert mood_bar(0.0) == "░" * 10 and mood_bar(1.0) == "█" * 10
    assert mood_bar(1.7) == "█" * 10 and mood_bar(-0.2) == "░" * 10
    assert mood_bar(float("nan")) == "░" * 10


def test_mood_lines_strongest_first_in_the_documented_format():
    lines = mood_lines(vec(sadness=0.68, peace=0.2, joy=0.12))
    assert lines[0] == "😢 슬픔 ███████░░░ 68%"
    assert lines[1] == "😌 평화 ██░░░░░░░░ 20%"
    assert len(lines) == NUM_EMOTIONS and mood_lines(vec(joy=1.0), top=2)[0].startswith("😄 기쁨")


def test_mood_lines_normalise_raw_song_vectors():
    # A "more like this" answer uses a song's own vector, which need not sum to one.
    lines = mood_lines(vec(anger=3.0, tension=1.0))
    assert lines[0].endswith(" 75%") and lines[1].endswith(" 25%")
    assert all(line.endswith(" 0%") for line in mood_lines([0.0] * NUM_EMOTIONS))


# ---- the reply embed ------------------------------------------------------------------------
def test_recommendation_embed_lists_tracks_as_links_with_reasons_and_rec_id():
    embed = recommendation_embed(rec())
    lines = embed.description.splitlines()
    # What was understood comes first, then the songs.
    assert lines[:3] == ["지금 기분: 😢 슬픔 68%", "지금 마음에 어울리는 노래예요.", ""]
    assert lines[3] == "**1. [노래 1](https://example.com/1)** — 가수 1"
    assert lines[4] == "└ 이유 1"
    assert sum(line.startswith("**") for line in lines) == 5
    assert embed.fields[0].name == "기분 읽기"
    assert embed.fields[0].value.splitlines() == [
        "😢 슬픔 ███████░░░ 68%", "😌 평화 ██░░░░░░░░ 20%", "😄 기쁨 █░░░░░░░░░ 12%"]
    assert embed.footer.text.startswith("rec 0123456789abcdef")
    assert len(embed) <= 6000


def test_recommendation_embed_title_follows_the_source():
    assert "지금 기분" in recommendation_embed(rec()).title
    explicit = recommendation_embed(rec(source="explicit", emotion=vec(peace=0.9, joy=0.1)))
    assert "😌 평화" in explicit.title and explicit.fields[0].name == "요청한 분위기"
    assert len(explicit.fields[0].value.splitlines()) == 1
    assert "비슷한" in recommendation_embed(rec(source="similar")).title


def test_embed_shows_the_genre_and_works_without_intro_or_mood():
    r = rec(text="", emotion=None, tracks=[track(1, genre="랩/힙합")])
    embed = recommendation_embed(r)
    assert embed.description.splitlines()[0] == (
        "**1. [노래 1](https://example.com/1)** — 가수 1 · 랩/힙합")
    assert embed.fields == [] and "지금 기분" in embed.title


def test_intro_is_escaped_and_clipped():
    embed = recommendation_embed(rec(text="**굵게** " + "가" * 2000))
    head = embed.description.split("\n\n", 1)[0]
    assert head.startswith("\\*\\*굵게") and len(head) < 700
    assert len(embed) <= 6000


def test_hostile_titles_and_urls_cannot_break_the_markdown():
    r = rec(text="", emotion=vec(joy=1.0), tracks=[
        track(1, title="[**굵게**](http://evil)", artist="*별*",
              link="https://www.youtube.com/results?search_query=a (live)")])
    line = recommendation_embed(r).description.splitlines()[0]
    link_text = re.match(r"\*\*1\. \[(.*)\]\((\S+)\)\*\* — (.*)$", line)
    assert link_text is not None, line
    assert "[" not in link_text.group(1) and "]" not in link_text.group(1)
    assert "**" not in link_text.group(1)  # would end the surrounding bold early
    assert link_text.group(2).endswith("a%20%28live%29")
    assert link_text.group(3) == r"\*별\*"


def test_long_titles_and_reasons_are_clipped_and_empty_answers_still_render():
    long = rec(text="", emotion=vec(joy=1.0),
               tracks=[track(1, title="가" * 500, reason="나" * 900)])
    lines = recommendation_embed(long).description.splitlines()
    assert len(lines[0]) < 200 and lines[0].count("…") == 1 and len(lines[1]) <= 182
    empty = recommendation_embed(rec(n_tracks=0))
    assert "찾지 못했어요" in empty.description


def test_note_replaces_the_feedback_hint_in_the_footer():
    footer = recommendation_embed(rec(), note=NOTE_NO_FEEDBACK).footer.text
    assert footer.startswith(NOTE_NO_FEEDBACK) and "0123456789abcdef" in footer
    assert "반응" not in footer


# ---- one Reply, one Discord shape -----------------------------------------------------------
def test_answer_of_each_kind():
    shown = Answer.of(rec())
    assert shown.embed is not None and shown.content is None and not shown.confirm
    assert shown.kind == "recommend"
    privacy = Answer.of(Reply("privacy", "지우려면 '삭제할게요'라고 답해 주세요."))
    # On Discord deleting takes a button press, not a typed answer.
    assert privacy.confirm and privacy.content == FORGET_PROMPT and privacy.embed is None
    for kind in ("smalltalk", "feedback", "busy", "error"):
        said = Answer.of(Reply(kind, "네 🙂"))
        assert (said.content, said.embed, said.confirm) == ("네 🙂", None, False)
    helped = Answer.of(Reply("help", "도움말"))
    assert helped.content.startswith("도움말") and helped.content.endswith(DISCORD_HELP)
    assert Answer.of(Reply("error", "")).content == ENGINE_FAILED
    assert len(Answer.of(Reply("smalltalk", "가" * 5000)).content) == 2000


# ---- reactions and buttons ------------------------------------------------------------------
def test_bot_reactions_are_exactly_the_feedback_reactions():
    assert [reaction_signal(e) for e in BOT_REACTIONS] == [
        Signal.LIKE, Signal.LOVE, Signal.DISLIKE, Signal.SKIP]
    assert {reaction_signal(e) for e in BOT_REACTIONS} == set(REACTIONS.values())
    assert reaction_signal("❤") is Signal.LOVE  # with or without U+FE0F
    assert reaction_signal("🎉") is None and reaction_signal(None) is None


async def test_feedback_view_fits_discords_limits_and_encodes_each_track():
    view = feedback_view(rec(n_tracks=10))  # rec_k may be up to 10
    items = view.children
    assert len(items) <= 25 and {i.row for i in items} == set(range(MAX_BUTTON_ROWS))
    assert view.timeout is None and view.is_persistent()
    tracks = [i for i in items if isinstance(i, FeedbackButton)]
    pattern = re.compile(FEEDBACK_TEMPLATE)
    for item in tracks:
        assert len(item.custom_id) <= 100
        m = pattern.fullmatch(item.custom_id)
        assert m and m["rec"] == "0123456789abcdef" and int(m["pos"]) == item.position
        assert BUTTONS[m["sig"]] is item.signal and item.item.label == str(item.position + 1)
    assert {(i.position, i.signal) for i in tracks} == {
        (p, s) for p in range(10) for s in (Signal.LIKE, Signal.DISLIKE)}
    refine = [i for i in items if isinstance(i, RefineButton)]
    assert [i.item.label for i in refine] == ["다른 노래", "더 신나게", "더 잔잔하게"]
    assert {i.row for i in refine} == {4} and all(i.rec_id == "0123456789abcdef" for i in refine)
    assert feedback_view(rec(n_tracks=0)) is None


async def test_five_tracks_take_a_like_row_a_dislike_row_and_the_refinement_row():
    rows: dict[int, list[str]] = {}
    for item in feedback_view(rec()).children:
        rows.setdefault(item.row, []).append(f"{item.item.emoji}{item.item.label}")
    assert rows == {0: ["👍1", "👍2", "👍3", "👍4", "👍5"],
                    1: ["👎1", "👎2", "👎3", "👎4", "👎5"],
                    2: ["🔀다른 노래", "⚡더 신나게", "🌙더 잔잔하게"]}


async def test_refine_button_rebuilds_itself_from_its_custom_id():
    assert refine_custom_id("beef", "other") == "mt:rf:beef:other"
    assert REFINEMENTS["other"].words == "다른 거" and REFINEMENTS["up"].words == "더 신나게"
    m = re.compile(REFINE_TEMPLATE).fullmatch("mt:rf:beef:down")
    item = discord.ui.Button(custom_id="mt:rf:beef:down", row=2)
    button = await RefineButton.from_custom_id(None, item, m)  # type: ignore[arg-type]
    assert (button.rec_id, button.action, button.row) == ("beef", "down", 2)
    for bad in ("mt:rf:BEEF:up", "mt:rf:beef:sideways", "mt:fb:beef:1:like"):
        assert re.compile(REFINE_TEMPLATE).fullmatch(bad) is None, bad
    with pytest.raises(ValueError):
        refine_custom_id("beef", "louder")


async def test_button_rebuilds_itself_from_its_custom_id():
    custom_id = feedback_custom_id("beef", 3, Signal.LOVE)
    assert custom_id == "mt:fb:beef:3:love"
    m = re.compile(FEEDBACK_TEMPLATE).fullmatch(custom_id)
    item = discord.ui.Button(custom_id=custom_id, row=3)
    button = await FeedbackButton.from_custom_id(None, item, m)  # type: ignore[arg-type]
    assert (button.rec_id, button.position, button.signal, button.row) == (
        "beef", 3, Signal.LOVE, 3)
    for bad in ("mt:fb:BEEF:3:love", "mt:fb:beef:12:like", "mt:fb:beef:1:skip", "x" + custom_id):
        assert re.compile(FEEDBACK_TEMPLATE).fullmatch(bad) is None, bad


def test_song_at_uses_display_order_whatever_the_stored_numbering():
    stored = stored_rec("r", 0, (), [(1, "a", 0.3), (2, "b", 0.2), (3, "c", 0.1)])
    assert [stored.song_at(i) for i in range(4)] == ["a", "b", "c", None]
    assert stored_rec("r", 0, (), []).song_at(0) is None
    assert stored.song_at(-1) is None


def stored_rec(rec_id: str, created_at: object, emotion: tuple, items: list) -> StoredRecommendation:
    return StoredRecommendation(rec_id, "u", "discord", "text", emotion, None, created_at,  # type: ignore[arg-type]
                                tuple(StoredItem(*i) for i in items))


def test_button_ack_says_what_was_recorded():
    assert "「봄날」" in button_ack(Signal.LIKE, "봄날", True)
    assert "좋아요" in button_ack(Signal.LIKE, "봄날", True)
    assert "이미" in button_ack(Signal.DISLIKE, "봄날", False)
    assert "이 곡" in button_ack(Signal.LOVE, None, True)


# ---- small texts ----------------------------------------------------------------------------
def test_strip_bot_mention_removes_only_the_bot():
    assert strip_bot_mention("<@42> 우울해", 42) == "우울해"
    assert strip_bot_mention("오늘 <@!42> 너무 <@42>", 42) == "오늘   너무"
    assert strip_bot_mention("<@7> 우울해", 42) == "<@7> 우울해"
    assert strip_bot_mention("  <@42>  ", 42) == ""


def test_rate_limited_text_rounds_up_and_never_says_zero():
    assert "13초" in rate_limited_text(12.01)
    assert "1초" in rate_limited_text(0.0)


def test_user_key_namespaces_discord_ids():
    assert user_key(123) == "discord:123"


def test_history_embed_shows_mood_songs_and_rec_ids():
    entries = [stored_rec("r2", 1_700_000_000, vec(joy=1.0), [(0, "s1", 0.9), (1, "gone", 0.5)]),
               stored_rec("r1", "garbage", (), [])]
    embed = history_embed(entries, {"s1": "봄날"}.get)
    first, second = embed.description.splitlines()
    assert "<t:1700000000:R>" in first and "😄 기쁨" in first and "봄날, gone" in first
    assert first.endswith("`r2`") and second.startswith("언젠가") and "—" in second
    assert "아직" in history_embed([], {}.get).description


def test_forget_done_text_reports_counts():
    text = forget_done_text({"feedback": 3, "recommendations": 2, "users": 0})
    assert "feedback 3건" in text and "recommendations 2건" in text and "users" not in text
    assert "없었어요" in forget_done_text({"users": 0})


def test_admin_texts():
    assert "300곡 → 320곡" in reindex_done_text({"previous": 300, "songs": 320, "seconds": 1.5})
    assert "users=3" in retrain_done_text({"users": 3})
    assert "적용되지 않았어요" in retrain_done_text(False)
    assert channel_list_text([]).startswith("멘션 없이 대답하는 채널이 없어요")
    assert channel_list_text(["1", 2]) == "멘션 없이 대답하는 채널: <#1>, <#2>"
    embed = stats_embed({"users": 2, "last_24h": {"feedback": 4}}, songs=1234, cf_loaded=False)
    fields = {f.name: f.value for f in embed.fields}
    assert fields == {"users": "2", "last_24h": "feedback: 4", "인덱스 곡 수": "1,234",
                      "CF 모델": "없음"}


@pytest.mark.parametrize(("user", "expected"), [
    (discord.Object(id=1), False),  # a DM user: no guild permissions attribute
    (type("M", (), {"id": 1, "roles": [], "guild_permissions": discord.Permissions.all()})(),
     True),
    (type("M", (), {"id": 1, "roles": [discord.Object(id=9)],
                    "guild_permissions": discord.Permissions.none()})(), True),
    (type("M", (), {"id": 5, "roles": [], "guild_permissions": None})(), True),
])
def test_is_admin(user, expected):
    assert is_admin(user, admin_user_ids={5}, admin_role_ids={9}) is expected


def test_labels_are_all_renderable():
    # Every mood the classifier can output has an emoji line; a new label would show up here.
    assert [line.split()[1] for line in mood_lines([1.0 / NUM_EMOTIONS] * NUM_EMOTIONS)] == list(
        LABELS)
