"""Buttons: per-track feedback that survives restarts, and the /forget-me confirmation.

Feedback buttons are :class:`discord.ui.DynamicItem`s. Everything a press needs (rec id, track
position, signal) is in the ``custom_id`` itself, so after a restart the bot re-registers one
regex (``bot.add_dynamic_items``) and old messages keep working — no per-message view has to be
re-created from the database, and the process holds no state per message it ever sent.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.render import (
    FEEDBACK_NOT_SAVED,
    FEEDBACK_UNKNOWN,
    STORE_UNAVAILABLE,
    button_ack,
    forget_done_text,
    user_key,
)
from bot.discord.replies import send_ephemeral
from bot.engine import FeedbackUnavailableError, Recommendation, UnknownAnswerError
from bot.feedback import BUTTONS, Signal
from bot.store import UnknownRecommendationError

if TYPE_CHECKING:
    from bot.discord.app import MoodtuneBot

log = logging.getLogger("moodtune.discord")

__all__ = [
    "FEEDBACK_TEMPLATE",
    "MAX_BUTTON_ROWS",
    "FeedbackButton",
    "ForgetConfirmView",
    "feedback_custom_id",
    "feedback_view",
    "record_track_feedback",
]

#: ``mt:fb:<rec_id>:<position>:<signal>``; position is 0-based, one digit (≤ 5 rows anyway).
FEEDBACK_TEMPLATE = (r"mt:fb:(?P<rec>[0-9a-f]+):(?P<pos>\d):(?P<sig>"
                     + "|".join(re.escape(k) for k in BUTTONS) + ")")
#: Discord allows 5 action rows per message; one row per track.
MAX_BUTTON_ROWS = 5
_ROW_SIGNALS: tuple[Signal, ...] = (Signal.LIKE, Signal.DISLIKE)
_LOOK: dict[Signal, tuple[discord.ButtonStyle, str]] = {
    Signal.LIKE: (discord.ButtonStyle.success, "👍"),
    Signal.LOVE: (discord.ButtonStyle.primary, "❤️"),
    Signal.DISLIKE: (discord.ButtonStyle.secondary, "👎"),
}
_ACTION = {sig: action for action, sig in BUTTONS.items()}


def feedback_custom_id(rec_id: str, position: int, signal: Signal) -> str:
    return f"mt:fb:{rec_id}:{int(position)}:{_ACTION[signal]}"


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


def feedback_view(rec: Recommendation) -> discord.ui.View | None:
    """One row per track (👍 n / 👎 n), for at most five tracks; None when there are no tracks.

    ``timeout=None`` plus fully custom_id'd items makes the view persistent; the bot also
    registers :class:`FeedbackButton` at start so presses on old messages are routed.
    """
    tracks = rec.tracks[:MAX_BUTTON_ROWS]
    if not tracks:
        return None
    view = discord.ui.View(timeout=None)
    for pos, _track in enumerate(tracks):
        for signal in _ROW_SIGNALS:
            view.add_item(FeedbackButton(rec.rec_id, pos, signal, row=pos))
    return view


class ForgetConfirmView(discord.ui.View):
    """"정말 지울까요?" — a deliberate second click before deleting someone's whole history."""

    def __init__(self, bot: MoodtuneBot, origin: discord.Interaction, *,
                 timeout: float = 120.0) -> None:
        super().__init__(timeout=timeout)
        self.bot = bot
        self.origin = origin  # the /forget-me interaction whose ephemeral message shows us
        self.owner_id = origin.user.id
        self.result: dict[str, int] | None = None

    async def on_timeout(self) -> None:
        """Grey out the question, so a late click does not look like it deleted anything."""
        try:
            await self.origin.edit_original_response(
                content="시간이 지나 취소했어요. 기록은 그대로예요.", view=None)
        except discord.HTTPException:
            log.info("could not expire the forget-me prompt", exc_info=True)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # Ephemeral messages are only visible to their owner, but be explicit: nobody else
        # may confirm deleting this person's data.
        return interaction.user.id == self.owner_id

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
