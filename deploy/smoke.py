"""Check a running deployment end to end through its front door (standard library only).

    python3 deploy/smoke.py http://localhost:8080            # the compose / nginx front
    python3 deploy/smoke.py http://127.0.0.1:8000 --no-kakao  # one process, web chat only

Why through the proxy: behind a round-robin proxy a person's consecutive requests land on
different replicas, so this is the test of "several replicas behave as one bot" that a unit
test on one machine cannot give. It talks like the web page (session cookie, CSRF header) and
like Kakao i Open Builder (SkillPayloads, the delete confirmation's quick reply), and fails with
a non-zero exit status and the step that broke:

1. a web conversation: a mood, then three "다른 거" refinements, each continuing the thread
   and never repeating a track of the earlier answers;
2. a Kakao request, then "내 정보 삭제" → tap "삭제할게요" (deleted) → the same tap again
   (refused: spent), which needs SECRET_KEY shared by every replica;
3. the web forget-me.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any


class SmokeError(AssertionError):
    """A step's answer was not what one bot would say."""


class Client:
    def __init__(self, base: str, kakao_secret: str | None) -> None:
        self.base = base.rstrip("/")
        self.kakao_secret = kakao_secret
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = ""
        self.rows: list[tuple[str, int, float, str]] = []

    def call(self, step: str, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
        t0 = time.perf_counter()
        try:
            with self.opener.open(req, timeout=10) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        ms = (time.perf_counter() - t0) * 1000
        try:
            out = json.loads(raw)
        except ValueError:
            out = raw.decode("utf-8", "replace")
        self.rows.append((step, status, ms, _summary(out)))
        if status != 200:
            raise SmokeError(f"{step}: HTTP {status}: {str(out)[:300]}")
        return out

    def web(self, step: str, text: str) -> dict[str, Any]:
        return self.call(step, "POST", "/api/chat", {"text": text},
                         {"X-CSRF-Token": self.csrf})

    def kakao(self, step: str, utterance: str, user: str, extra: Any = None) -> dict[str, Any]:
        payload = {
            "intent": {"id": "smoke", "name": "기분 추천"},
            "userRequest": {"timezone": "Asia/Seoul", "utterance": utterance, "lang": "ko",
                            "block": {"id": "smoke", "name": "기분 추천"},
                            "user": {"id": user, "type": "botUserKey", "properties": {}}},
            "bot": {"id": "smoke", "name": "moodtune"},
            "action": {"id": "smoke", "name": "moodtune-skill", "params": {},
                       "detailParams": {}, "clientExtra": extra},
        }
        headers = {"X-Moodtune-Secret": self.kakao_secret} if self.kakao_secret else {}
        return self.call(step, "POST", "/kakao/skill", payload, headers)


def _summary(out: Any) -> str:
    if isinstance(out, dict) and "tracks" in out:
        return f"{out.get('kind')}: " + ", ".join(t["title"] for t in out["tracks"][:5])
    text = json.dumps(out, ensure_ascii=False) if not isinstance(out, str) else out
    return text[:90]


def _texts(resp: dict[str, Any]) -> str:
    return json.dumps(resp, ensure_ascii=False)


def web_conversation(c: Client) -> None:
    c.csrf = c.call("web session", "GET", "/api/session")["csrf"]
    first = c.web("web mood", "오늘 너무 지치고 우울해")
    if first["kind"] != "recommend" or not first["tracks"]:
        raise SmokeError(f"web mood: expected songs, got {first['kind']}: {first['text']}")
    seen = {(t["title"], t["artist"]) for t in first["tracks"]}
    for i in range(3):
        more = c.web(f"web refine {i + 1}", "다른 거")
        if more["kind"] != "recommend" or more["request"].get("intent") != "refine":
            raise SmokeError(f"web refine {i + 1}: not read as a refinement: {more['text']}")
        got = {(t["title"], t["artist"]) for t in more["tracks"]}
        if got & seen:
            raise SmokeError(f"web refine {i + 1}: repeated {sorted(got & seen)} (the thread "
                             "or no-repeat memory did not reach this replica)")
        seen |= got


def kakao_forget(c: Client) -> None:
    user = f"smoke-{uuid.uuid4().hex[:12]}"
    answer = c.kakao("kakao mood", "비 오는 날 듣기 좋은 노래", user)
    if "listCard" not in _texts(answer) and "carousel" not in _texts(answer):
        raise SmokeError(f"kakao mood: no song card: {_texts(answer)[:200]}")
    asked = c.kakao("kakao 내 정보 삭제", "내 정보 삭제", user)
    replies = asked["template"].get("quickReplies", [])
    extra = next((q.get("extra") for q in replies if q.get("label") == "삭제할게요"), None)
    if not extra:
        raise SmokeError("kakao 내 정보 삭제: no 삭제할게요 quick reply")
    done = c.kakao("kakao 삭제할게요", "삭제할게요", user, extra)
    if "삭제했어요" not in _texts(done):
        raise SmokeError("kakao 삭제할게요: not deleted (is SECRET_KEY the same on every "
                         f"replica?): {_texts(done)[:200]}")
    again = c.kakao("kakao 삭제할게요 again", "삭제할게요", user, extra)
    if "삭제했어요" in _texts(again):
        raise SmokeError("kakao 삭제할게요 again: a spent confirmation deleted again")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", help="the deployment's front URL, e.g. http://localhost:8080")
    ap.add_argument("--no-kakao", action="store_true", help="skip the Kakao skill steps")
    ap.add_argument("--kakao-secret", default=None, help="KAKAO_SECRET, when one is set")
    args = ap.parse_args(argv)
    c = Client(args.base, args.kakao_secret)
    failed: str | None = None
    try:
        web_conversation(c)
        if not args.no_kakao:
            kakao_forget(c)
        c.call("web forget-me", "POST", "/api/forget-me", {"confirm": True},
               {"X-CSRF-Token": c.csrf})
    except (SmokeError, OSError) as exc:
        failed = str(exc)
    print(f"| {'step':<24} | {'HTTP':>4} | {'ms':>7} | answer")
    print(f"|{'-' * 26}|{'-' * 6}|{'-' * 9}|{'-' * 40}")
    for step, status, ms, summary in c.rows:
        print(f"| {step:<24} | {status:>4} | {ms:>7.1f} | {summary}")
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    print(f"ok: {len(c.rows)} requests through {c.base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
