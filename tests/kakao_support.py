"""Helpers shared by the Kakao skill-server tests (``tests/test_kakao*.py``).

Real HTTP on 127.0.0.1, the real engine on the keyword classifier and a synthetic 300-song
catalogue; payloads follow the SkillPayload shape in Kakao's skill guide. A fake "Kakao callback"
app on 127.0.0.1 receives the late answers of the callback flow, so the servers these helpers
start allow http and loopback callback targets (``KAKAO_CALLBACK_ALLOW_INSECURE``), as a
developer's machine would, with 127.0.0.1 on the host allow-list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.engine import Recommender
from bot.kakao import SKILL_PATH, create_app
from bot.kakao.app import runner_options
from bot.store import Store
from indexing.index import SongIndex, build_index
from indexing.synthetic import synthetic_catalog
from inference.keyword import KeywordClassifier
from tests.fakes import make_settings

LOCAL_CALLBACKS = {"kakao_callback_allow_insecure": True,
                   "kakao_callback_hosts": ["127.0.0.1", "localhost"]}


def kakao_payload(utterance: Any, user_id: Any = "kakao-user-1", callback_url: str | None = None,
                  client_extra: Any = None) -> dict[str, Any]:
    """A SkillPayload shaped like the examples in Kakao's skill development guide."""
    user_request: dict[str, Any] = {
        "timezone": "Asia/Seoul",
        "params": {"ignoreMe": "true"},
        "block": {"id": "5f0a1b2c3d4e5f6a7b8c9d0e", "name": "기분 추천"},
        "utterance": utterance,
        "lang": "ko",
        "user": {"id": user_id, "type": "botUserKey",
                 "properties": {"botUserKey": user_id, "isFriend": True}},
    }
    if callback_url is not None:
        user_request["callbackUrl"] = callback_url
    return {
        "intent": {"id": "5f0a1b2c3d4e5f6a7b8c9d0e", "name": "기분 추천"},
        "userRequest": user_request,
        "bot": {"id": "5f0a00000000000000000001", "name": "moodtune"},
        "action": {"name": "moodtune-skill", "clientExtra": client_extra, "params": {},
                   "id": "5f0a00000000000000000002", "detailParams": {}},
    }


def build_test_index(tmp_path_factory: Any) -> Iterator[SongIndex]:
    """One Annoy index over the catalogue ``make_settings`` writes (use in a module fixture)."""
    d = tmp_path_factory.mktemp("kakao-index")
    build_index(synthetic_catalog(300, seed=7), d / "index", n_trees=10,
                model_fingerprint=KeywordClassifier.fingerprint)
    idx = SongIndex.load(d / "index")
    yield idx
    idx.close()


class BrokenClassifier(KeywordClassifier):
    def predict(self, texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model file vanished")


@asynccontextmanager
async def kakao_server(tmp_path: Path, index: SongIndex, *, store: bool | Path = False,
                       classifier: KeywordClassifier | None = None,
                       engine_cls: type[Recommender] = Recommender, deadline_s: float = 4.5,
                       **overrides: Any) -> AsyncIterator[tuple[TestClient, Recommender]]:
    """Engine + skill server on 127.0.0.1; both torn down on exit.

    ``store`` True opens a SQLite store in ``tmp_path``; a path opens that file (two servers on
    one database stand for a restart).
    """
    settings = make_settings(tmp_path, **{**LOCAL_CALLBACKS, **overrides})
    db = store if isinstance(store, Path) else tmp_path / "moodtune.sqlite3"
    st = (await Store.open(db, store_message_text=settings.store_message_text)
          if store else None)
    engine = engine_cls(settings, classifier or KeywordClassifier(), index, st)
    app = create_app(engine, settings, deadline_s=deadline_s)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(**runner_options(settings))
    client = TestClient(server)
    await client.start_server()
    try:
        yield client, engine
    finally:
        await client.close()
        await engine.close()


@asynccontextmanager
async def callback_receiver(status: int = 200, headers: dict[str, str] | None = None,
                            delay: float = 0.0
                            ) -> AsyncIterator[tuple[str, list, asyncio.Event]]:
    """A stand-in for Kakao's callback endpoint: records each request (answering after
    ``delay`` seconds with ``status``)."""
    received: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        received.append({"path": request.path, "token": request.match_info.get("token"),
                         "body": await request.json() if request.can_read_body else None,
                         "content_type": request.content_type, "method": request.method})
        got.set()
        await asyncio.sleep(delay)
        return web.json_response({"taskId": "t-1", "status": "SUCCESS"}, status=status,
                                 headers=headers)

    app = web.Application()
    app.router.add_post("/v1/callback/{token}", handle)
    app.router.add_route("*", "/elsewhere", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/v1/callback/one-time-token")), received, got
    finally:
        await server.close()


async def post(client: TestClient, payload: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post(SKILL_PATH, json=payload, **kw)
    return resp.status, await resp.json()


def texts(body: dict[str, Any]) -> list[str]:
    return [o["simpleText"]["text"] for o in body["template"]["outputs"] if "simpleText" in o]


def list_card(body: dict[str, Any]) -> dict[str, Any]:
    return next(o["listCard"] for o in body["template"]["outputs"] if "listCard" in o)


def reply(body: dict[str, Any], label: str) -> dict[str, Any]:
    return next(q for q in body["template"]["quickReplies"] if q["label"] == label)


def metric_value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def metrics_text(client: TestClient, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200
    return await resp.text()


@asynccontextmanager
async def serving(serve: Any, engine: Recommender, settings: Any, probe: str
                  ) -> AsyncIterator[Any]:
    """``serve(engine, settings)`` running as a task, once ``probe`` (a /healthz URL) answers;
    yields an aiohttp client session. On exit the server is cancelled (it must end with
    CancelledError, releasing its ports) and the engine closed."""
    import pytest
    from aiohttp import ClientSession

    task = asyncio.create_task(serve(engine, settings))
    try:
        async with ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(probe) as resp:
                        assert resp.status == 200
                        break
                except OSError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail(f"server did not start ({probe})")
            yield http
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await engine.close()
