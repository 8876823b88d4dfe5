"""Buttons: per-track feedback and "다른 노래 / 더 신나게 / 더 잔잔하게", both surviving restarts,
and the forget-me confirmation.

Feedback and refinement buttons are :class:`discord.ui.DynamicItem`s. Everything a press needs
(rec id, track position, signal or refinement) is in the ``custom_id`` itself, so after a restart
the bot re-registers two regexes (``bot.add_dynamic_items``) and old messages keep working — no
per-message view has to be re-created from the database, and the process holds no state per
message it ever sent.

Layout (Discord allows 5 action rows of 5 buttons): one row of 👍 per five tracks, then one row
of 👎 per five tracks, then one row [다른 노래][더 신나게][더 잔잔하게]. Five tracks take three
rows; the most tracks a reply may have (``REC_K`` ≤ 10) take exactly five. Rows per signal,
rather than one row per track, are what leave room for the refinement row without dropping a
track's buttons.
"""

from __future__ import annotations

import logging
import re
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import discord

from bot import ratelimit
from bot.discord.render import (
    FEEDBACK_NOT_SAVED,
    FEEDBACK_UNKNOWN,
    NOT_CURRENT_THREAD,
    STORE_UNAVAILABLE,
    button_ack,
    forget_done_text,
    rate_limited_text,
    user_key,
)
from bot.discord.replies import send_ephemeral
from bot.engine import FeedbackUnavailableError, Reply, UnknownAnswerError
from bot.feedback import BUTTONS, Signal
from bot.store import UnknownRecommendationError

if TYPE_CHECKING:
    from bot.discord.app import MoodtuneBot

log = logging.getLogger("moodtune.discord")

__all__ = [
    "FEEDBACK_TEMPLATE",
    "MAX_BUTTON_ROWS",
    "MAX_TRACK_BUTTONS",
    "OTHER_WORDS",
    "REFINEMENTS",
    "REFINE_TEMPLATE",
    "FeedbackButton",
    "ForgetConfirmView",
    "RefineButton",
    "continue_thread",
    "feedback_custom_id",
    "feedback_view",
    "record_track_feedback",
    "refine_custom_id",
]

#: ``mt:fb:<rec_id>:<position>:<signal>``; position is 0-based, one digit (≤ 10 tracks).
FEEDBACK_TEMPLATE = (r"mt:fb:(?P<rec>[0-9a-f]+):(?P<pos>\d):(?P<sig>"
                     + "|".join(re.escape(k) for k in BUTTONS) + ")")
#: Discord allows 5 action rows per message, 5 buttons per row.
MAX_BUTTON_ROWS = 5
_PER_ROW = 5
#: Tracks that get 👍/👎 buttons: two signal rows each per five tracks plus the refinement row
#: must fit in five rows (``REC_K`` is at most 10, so every track gets them).
MAX_TRACK_BUTTONS = 10


class Refinement(NamedTuple):
    label: str
    emoji: str
    words: str  # what the press "says" to the engine: the same words a person could type


#: The refinement row. The words go through ``Recommender.respond`` like a typed message, so a
#: button and "더 신나게" typed in chat are one code path in the engine.
REFINEMENTS: dict[str, Refinement] = {
    "other": Refinement("다른 노래", "🔀", "다른 거"),
    "up": Refinement("더 신나게", "⚡", "더 신나게"),
    "down": Refinement("더 잔잔하게", "🌙", "더 잔잔하게"),
}
#: What ⏭️ and "다른 노래" ask for: the engine's "other" refinement (shown tracks excluded).
OTHER_WORDS = REFINEMENTS["other"].words
#: ``mt:rf:<rec_id>:<action>``: which answer the press continues, and how.
REFINE_TEMPLATE = (r"mt:rf:(?P<rec>[0-9a-f]+):(?P<act>"
                   + "|".join(re.escape(k) for k in REFINEMENTS) + ")")
_ROW_SIGNALS: tuple[Signal, ...] = (Signal.LIKE, Signal.DISLIKE)
_LOOK: dict[Signal, tuple[discord.ButtonStyle, str]] = {
    Signal.LIKE: (discord.ButtonStyle.success, "👍"),
    Signal.LOVE: (discord.ButtonStyle.primary, "❤️"),
    Signal.DISLIKE: (discord.ButtonStyle.secondary, "👎"),
}
_ACTION = {sig: action for action, sig in BUTTONS.items()}


def feedback_custom_id(rec_id: str, position: int, signal: Signal) -> str:
    return f"mt:fb:{rec_id}:{int(position)}:{_ACTION[signal]}"


def refine_custom_id(rec_id: str, action: str) -> str:
    if action not in REFINEMENTS:
        raise ValueError(f"unknown refinement {action!r}")
    return f"mt:rf:{rec_id}:{action}"


class FeedbackButton(discord.ui.DynamicItem[discord.ui.Button], template=FEEDBACK_TEMPLATE):
    """👍/❤️/👎 on one track of one answer; the state lives in the custom_id."""

    def __init__(self, rec_id: str, position: int, signal: Signal, *,
                 row: int | None = None) -> None:
        style, emoji = _LOOK[signal]
        super().__init__(
            discord.ui.Button(style=style, emoji=emoji, label=str(position + 1),
                              custom_id=feedback_custom_id(rec_id, position, signal)),
            row=row)
        self.rec_id = rec_id
        self.position = position
        self.signal = signal

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction,
                             item: discord.ui.Item[Any], match: re.Match[str]) -> FeedbackButton:
        """Rebuild the button from a press on any message, including ones sent before a restart."""
        return cls(match["rec"], int(match["pos"]), BUTTONS[match["sig"]], row=item.row)

    async def callback(self, interaction: discord.Interaction[MoodtuneBot]) -> None:  # type: ignore[override]
        await record_track_feedback(interaction.client, interaction, self.rec_id, self.position,
                                    self.signal)


async def record_track_feedback(bot: MoodtuneBot, interaction: discord.Interaction, rec_id: str,
                                position: int, signal: Signal) -> bool:
    """Store one button press and confirm it ephemerally; True if a new row was stored.

    Never raises: a locked database or a forgotten answer becomes a sentence for the presser,
    because an exception here would only show Discord's generic "interaction failed".
    """
    recommender = bot.recommender
    new = False
    try:
        song_id, new = await recommender.feedback_track(
            user_key(interaction.user.id), rec_id, position, signal, channel="discord")
        song = recommender.index.get(song_id)
        text = button_ack(signal, song.title if song is not None else None, new)
    except (UnknownAnswerError, UnknownRecommendationError):
        text = FEEDBACK_UNKNOWN
    except FeedbackUnavailableError:
        text = FEEDBACK_NOT_SAVED
    except Exception:
        log.warning("feedback on %s could not be stored", rec_id, exc_info=True)
        text = FEEDBACK_NOT_SAVED
    await send_ephemeral(interaction, text)
    return new


def feedback_view(reply: Reply) -> discord.ui.View | None:
    """The buttons under an answer (layout in the module docstring); None without tracks.

    ``timeout=None`` plus fully custom_id'd items makes the view persistent; the bot also
    registers :class:`FeedbackButton` and :class:`RefineButton` at start so presses on old
    messages are routed.
    """
    tracks = reply.tracks[:MAX_TRACK_BUTTONS]
    if not tracks or not reply.rec_id:
        return None
    view = discord.ui.View(timeout=None)
    rows_per_signal = -(-len(tracks) // _PER_ROW)
    for i, signal in enumerate(_ROW_SIGNALS):
        for pos in range(len(tracks)):
            view.add_item(FeedbackButton(reply.rec_id, pos, signal,
                                         row=i * rows_per_signal + pos // _PER_ROW))
    for action in REFINEMENTS:
        view.add_item(RefineButton(reply.rec_id, action, row=len(_ROW_SIGNALS) * rows_per_signal))
    return view


class RefineButton(discord.ui.DynamicItem[discord.ui.Button], template=REFINE_TEMPLATE):
    """"다른 노래" / "더 신나게" / "더 잔잔하게" under one answer: the next answer of its thread."""

    def __init__(self, rec_id: str, action: str, *, row: int | None = None) -> None:
        look = REFINEMENTS[action]
        super().__init__(
            discord.ui.Button(style=discord.ButtonStyle.secondary, emoji=look.emoji,
                              label=look.label, custom_id=refine_custom_id(rec_id, action)),
            row=row)
        self.rec_id = rec_id
        self.action = action

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction,
                             item: discord.ui.Item[Any], match: re.Match[str]) -> RefineButton:
        return cls(match["rec"], match["act"], row=item.row)

    async def callback(self, interaction: discord.Interaction[MoodtuneBot]) -> None:  # type: ignore[override]
        await continue_thread(interaction.client, interaction, self.rec_id,
                              REFINEMENTS[self.action].words)


async def continue_thread(bot: MoodtuneBot, interaction: discord.Interaction, rec_id: str,
                          words: str) -> None:
    """Answer ``words`` ("다른 거", "더 신나게", …) as the next turn of the thread ending in ``rec_id``.

    Only the person whose *latest* answer this is may continue it: the engine reads a
    refinement against that person's own thread, so a stranger's press (or one on an older
    answer) would refine something else than the message the button is under. Such a press
    gets a short ephemeral hint instead. The new answer counts against the rate limit like
    any recommendation; the press itself (like a 👍) does not.
    """
    user = user_key(interaction.user.id)
    if not await bot.is_current_thread(user, rec_id):
        await send_ephemeral(interaction, NOT_CURRENT_THREAD)
        return
    wait = await ratelimit.hit(bot.limiter, user)
    if wait is not None:
        await send_ephemeral(interaction, rate_limited_text(wait))
        return
    await interaction.response.defer(thinking=True)
    answer = await bot.answer(user, words)
    await bot.deliver(partial(interaction.followup.send, wait=True), answer,
                      owner_id=interaction.user.id, origin=interaction)


class ForgetConfirmView(discord.ui.View):
    """"정말 지울까요?" — a deliberate second click before deleting someone's whole history.

    Shown by ``/forget-me`` (ephemeral) and whenever the engine reads a message as a privacy
    request ("내 기록 다 지워 줘") — then it may sit in a public channel, so the owner check
    below is what keeps anyone else from pressing it.
    """

    def __init__(self, bot: MoodtuneBot, owner_id: int, *,
                 origin: discord.Interaction | None = None, timeout: float = 120.0) -> None:
        super().__init__(timeout=timeout)
        self.bot = bot
        self.owner_id = owner_id
        self.origin = origin  # the interaction whose (original) response shows the question
        self.prompt: discord.Message | None = None  # or the message that shows it
        self.result: dict[str, int] | None = None

    async def on_timeout(self) -> None:
        """Grey out the question, so a late click does not look like it deleted anything."""
        text = "시간이 지나 취소했어요. 기록은 그대로예요."
        try:
            if self.prompt is not None:
                await self.prompt.edit(content=text, view=None)
            elif self.origin is not None:
                await self.origin.edit_original_response(content=text, view=None)
        except discord.HTTPException:
            log.info("could not expire the forget-me prompt", exc_info=True)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # Nobody else may confirm deleting this person's data; in a channel they are told so
        # rather than shown Discord's bare "interaction failed".
        if interaction.user.id == self.owner_id:
            return True
        await send_ephemeral(interaction, "이 확인 버튼은 기록을 지우려는 분만 누를 수 있어요.")
        return False

    @discord.ui.button(label="네, 모두 지워 주세요", style=discord.ButtonStyle.danger, emoji="🧹")
    async def confirm(self, interaction: discord.Interaction,
                      button: discord.ui.Button[ForgetConfirmView]) -> None:
        await interaction.response.defer()  # deleting + WAL checkpoint may take a moment
        self.stop()
        try:
            self.result = await self.bot.forget(user_key(self.owner_id))
            text = forget_done_text(self.result)
        except Exception:
            log.warning("forget-me failed", exc_info=True)
            text = f"{STORE_UNAVAILABLE} 기록은 아직 지워지지 않았어요."
        await interaction.edit_original_response(content=text, view=None)

    @discord.ui.button(label="취소", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction,
                     button: discord.ui.Button[ForgetConfirmView]) -> None:
        self.stop()
        await interaction.response.edit_message(content="취소했어요. 기록은 그대로예요.",
                                                view=None)
