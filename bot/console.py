"""The console chat: the same engine as Discord and Kakao, in a terminal, with no token.

It is the bot a newcomer meets first (``make run`` on a fresh machine) and the quickest way to
feel a model or catalogue change. ``ConsoleChat.handle`` turns one input line into one reply
string, so it is tested without a terminal; ``run_console`` is the thin stdin/stdout loop.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable
from typing import TextIO

from bot.dialogue import Reply
from bot.engine import EngineError, Recommendation, Recommender
from bot.feedback import Signal, parse_signal
from inference.emotions import EMOTIONS, UnknownEmotionError, index_of
from inference.text import clean_text

__all__ = ["ConsoleChat", "render_recommendation", "render_reply", "run_console"]

HELP = """\
지금 기분이나 듣고 싶은 걸 한국어로 말해 주세요. 다섯 곡을 이유와 함께 골라 드려요.
  예: 오늘 너무 지치고 우울해 · 운동할 때 들을 힙합 · 아이유 노래 · 밤편지 같은 노래
      우울한데 신나는 걸로 바꾸고 싶어 · 더 신나게 · 좀 더 잔잔하게 · 다른 거 · 2번 좋다
  1+  / 1-        1번 곡 좋아요 / 별로예요   (1++ 최고, 1> 다음에)
  /mood 평화      그 무드의 곡 (분노 긴장 슬픔 평화 기쁨 중립)
  /more 2         2번 곡과 비슷한 곡
  /history        최근 추천
  /forget-me      내 기록 모두 지우기 (한 번 더 확인해요)
  /help, /quit"""

#: How long a "/forget-me" waits for its confirmation (Discord's confirm button waits as long).
FORGET_CONFIRM_S = 60.0
FORGET_ASK = ("🧹 추천 기록과 피드백을 모두 지울까요? 되돌릴 수 없어요.\n"
              "지우려면 '네'를, 그만두려면 아무 말이나 입력하세요.")
_YES = frozenset({"네", "예", "응", "yes", "y", "삭제", "삭제할게요", "/forget-me"})

_FEEDBACK = re.compile(r"^\s*([1-9])\s*(\S+)\s*$")


def _bar(p: float, width: int = 10) -> str:
    full = round(p * width)
    return "█" * full + "░" * (width - full)


def render_reply(reply: Reply) -> str:
    """A Reply as terminal text: the intro, mood bars, then numbered tracks with reasons."""
    if not reply.tracks:
        return reply.text
    lines = [reply.text, ""]
    if reply.emotion is not None and reply.source == "text":
        e = reply.emotion
        order = sorted(range(len(e)), key=lambda i: -e[i])
        lines += [f"  {EMOTIONS[i].emoji} {EMOTIONS[i].ko} {_bar(e[i])} {e[i]:.0%}"
                  for i in order[:3]] + [""]
    for n, t in enumerate(reply.tracks, 1):
        genre = f" [{t.genre}]" if t.genre else ""
        lines.append(f"{n}. {t.title} — {t.artist}{genre}")
        lines.append(f"   {t.reason}")
        lines.append(f"   {t.link}")
    lines.append("(1+ / 1- 로 평가, '더 신나게'·'다른 거'로 다듬기, /help 도움말)")
    return "\n".join(lines)


def render_recommendation(rec: Recommendation) -> str:
    """Mood bars, then numbered tracks with their reason and link."""
    e = rec.emotion
    order = sorted(range(len(e)), key=lambda i: -e[i])
    mood = "\n".join(f"  {EMOTIONS[i].emoji} {EMOTIONS[i].ko} {_bar(e[i])} {e[i]:.0%}"
                     for i in order[:3])
    head = {"text": "지금 기분", "explicit": "고른 무드", "similar": "이 곡의 무드"}.get(
        rec.source, "무드")
    lines = [f"{head}:", mood, ""]
    for n, t in enumerate(rec.tracks, 1):
        lines.append(f"{n}. {t.title} — {t.artist}")
        lines.append(f"   {t.reason}")
        lines.append(f"   {t.link}")
    lines.append("(1+ / 1- 로 평가, /help 도움말)")
    return "\n".join(lines)


class ConsoleChat:
    """One user's conversation; keeps the last recommendation for numbered feedback."""

    def __init__(self, recommender: Recommender, user_id: str = "console") -> None:
        self.rec = recommender
        self.user_id = user_id
        self.last: Recommendation | None = None
        self.done = False
        self._forget_asked_at: float | None = None

    async def handle(self, line: str) -> str:
        """Answer one input line. Never raises for user mistakes: it explains them."""
        text = clean_text(line).strip()
        if not text:
            return ""
        if self._forget_asked_at is not None:
            asked, self._forget_asked_at = self._forget_asked_at, None
            if time.monotonic() - asked <= FORGET_CONFIRM_S and text.casefold() in _YES:
                return await self._forget()
            if text.casefold() in _YES:
                return "확인이 늦어 삭제를 취소했어요. 다시 /forget-me 를 입력해 주세요."
            if text.casefold() in ("아니", "아니요", "no", "n", "취소"):
                return "삭제를 취소했어요. 기록은 그대로예요."
        cmd, _, arg = text.partition(" ")
        cmd = cmd.casefold()
        try:
            if cmd in ("/quit", "/exit", "/q", "quit", "exit"):
                self.done = True
                return "안녕히 가세요 🎧"
            if cmd in ("/help", "/h", "?"):
                return HELP
            if cmd == "/mood":
                return await self._mood(arg)
            if cmd == "/more":
                return await self._more(arg)
            if cmd == "/history":
                return await self._history()
            if cmd in ("/forget-me", "/forget"):
                if self.rec.store is None and not self.rec.users.peek(self.user_id):
                    return "지울 기록이 없어요."
                self._forget_asked_at = time.monotonic()
                return FORGET_ASK
            m = _FEEDBACK.match(text)
            if m and parse_signal(m.group(2)) is not None:
                return await self._feedback(int(m.group(1)), parse_signal(m.group(2)))
            if cmd.startswith("/"):
                return f"모르는 명령이에요: {cmd}\n{HELP}"
            return await self._respond(text)
        except EngineError as exc:
            return str(exc)

    async def _respond(self, text: str) -> str:
        """Everything that is not a console command goes to the engine's conversation."""
        reply = await self.rec.respond(self.user_id, text, channel="console")
        if reply.kind == "privacy":
            self._forget_asked_at = time.monotonic()
            return FORGET_ASK
        if reply.kind == "help":
            return f"{reply.text}\n\n{HELP}"
        if reply.tracks:
            self.last = _as_recommendation(self.user_id, reply)
        return render_reply(reply)

    def _show(self, rec: Recommendation) -> str:
        self.last = rec
        return render_recommendation(rec)

    async def _mood(self, arg: str) -> str:
        try:
            i = index_of(arg)
        except UnknownEmotionError:
            return "무드를 골라 주세요: " + " ".join(e.ko for e in EMOTIONS)
        return await self._respond(EMOTIONS[i].ko)

    def _track(self, n: int):
        if self.last is None:
            return None, "먼저 기분을 말해 주세요. 추천을 받은 뒤 번호로 평가할 수 있어요."
        if not 1 <= n <= len(self.last.tracks):
            return None, f"1부터 {len(self.last.tracks)} 사이의 번호를 써 주세요."
        return self.last.tracks[n - 1], None

    async def _more(self, arg: str) -> str:
        if not arg.strip().isdigit():
            return "비슷한 곡을 찾을 번호를 써 주세요 (예: /more 2)"
        _, err = self._track(int(arg))
        if err:
            return err
        return await self._respond(f"{int(arg)}번 같은 거")

    async def _feedback(self, n: int, signal: Signal) -> str:
        track, err = self._track(n)
        if err:
            return err
        try:
            _, stored = await self.rec.feedback_track(self.user_id, self.last.rec_id, n - 1,
                                                      signal, channel="console")
        except EngineError as exc:
            return str(exc)
        except Exception as exc:  # the store is down: say so, keep chatting
            return f"평가를 저장하지 못했어요 ({type(exc).__name__}). 추천은 계속 받을 수 있어요."
        word = {Signal.LOVE: "최고예요 ❤️", Signal.LIKE: "좋아요 👍", Signal.DISLIKE: "별로예요 👎",
                Signal.SKIP: "다음에 ⏭️", Signal.PLAY: "들어봤어요"}[signal]
        note = "" if stored else " (이미 기록돼 있어요)"
        return f"{n}. {track.title} — {word}{note}"

    async def _history(self) -> str:
        if self.rec.store is None:
            return "기록 저장소가 꺼져 있어요."
        items = await self.rec.history(self.user_id, limit=5)
        if not items:
            return "아직 추천 기록이 없어요."
        out = []
        for h in items:
            e = h.emotion
            top = max(range(len(e)), key=lambda i: e[i])
            songs = [self.rec.index.get(sid) for sid in h.song_ids]
            names = ", ".join(s.title for s in songs if s is not None)
            out.append(f"{EMOTIONS[top].emoji} {EMOTIONS[top].ko}: {names}")
        return "\n".join(out)

    async def _forget(self) -> str:
        counts = await self.rec.forget_user(self.user_id)
        self.last = None
        return f"기록을 모두 지웠어요 ({sum(counts.values())}건)."


def _as_recommendation(user_id: str, reply: Reply) -> Recommendation:
    """Keep the tracks of the last answer for numbered feedback ("2+", "/more 2")."""
    return Recommendation(rec_id=reply.rec_id or "", user_id=user_id,
                          emotion=reply.emotion or (), source=reply.source,
                          tracks=list(reply.tracks))


async def run_console(recommender: Recommender, *, user_id: str = "console",
                      stdin: TextIO | None = None, write: Callable[[str], None] | None = None) -> int:
    """Read lines until EOF or /quit; a prompt is shown only on an interactive terminal."""
    stdin = stdin or sys.stdin
    write = write or (lambda s: print(s, flush=True))
    chat = ConsoleChat(recommender, user_id)
    interactive = stdin.isatty()
    write("moodtune 🎧 — 지금 기분을 말해 주세요. (/help 도움말, /quit 종료)")
    loop = asyncio.get_running_loop()
    while not chat.done:
        if interactive:
            sys.stdout.write("> ")
            sys.stdout.flush()
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:  # EOF
            break
        reply = await chat.handle(line)
        if reply:
            write(reply)
    return 0
