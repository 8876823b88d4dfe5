"""bot/cf_share.py: CF models travel through the shared database, so replicas serve the newest.

The pure half (pack, install, what an archive may hold) runs everywhere. The replica half runs
two :class:`~bot.engine.Recommender` objects with separate CF_PATHs on one throwaway PostgreSQL
(skipped without the server binaries, as in ``tests/test_replicas.py``): a model that lands on A
reaches B after one check, an older local model never displaces the newer shared one, and a
failing store or a bad archive never costs B the model it serves.
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from bot.cf_share import (
    ARCHIVE_NAMES,
    CFShareError,
    ModelStamp,
    install_cf,
    pack_cf,
    stamp_of,
    trained_at_seconds,
)
from bot.engine import Recommender
from bot.store import CF_MODELS_KEPT, Store, StoreUnavailableError
from bot.store_pg import PgStore
from indexing.cf import CFModel, save_cf
from tests.fakes import KeywordClassifier, make_settings
from tests.pg_support import PgServer, server_or_skip

OLD, NEW, NEWER = "2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00"


def tiny_model(path: Path, trained_at: str, *, seed: int = 0, n_users: int = 3,
               songs: list[str] | None = None) -> str:
    """A small random CF artifact at ``path`` (``trained_at`` fixes its place in the order)."""
    items = songs or [f"s{i}" for i in range(6)]
    rng = np.random.default_rng(seed)
    save_cf(path, user_ids=[f"u{i}" for i in range(n_users)], item_ids=items,
            user_factors=rng.standard_normal((n_users, 4)),
            item_factors=rng.standard_normal((len(items), 4)),
            user_events=np.full(n_users, 20), info={"note": "test", "trained_at": trained_at,
                                                    "seed": seed})
    return json.loads((path / "cf.json").read_text())["model_id"]


def tar_of(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")
                  and not p.name.endswith(".lock"))


# ---- pack / install ---------------------------------------------------------------------------
def test_pack_and_install_round_trip(tmp_path: Path) -> None:
    model_id = tiny_model(tmp_path / "a", NEW)
    stamp, archive = pack_cf(tmp_path / "a")
    assert stamp == ModelStamp(trained_at_seconds(NEW), model_id)
    assert pack_cf(tmp_path / "a")[1] == archive  # deterministic: one model, one byte string
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert sorted(tar.getnames()) == sorted(ARCHIVE_NAMES)  # exactly these, nothing else
    assert install_cf(archive, tmp_path / "b", expect_model_id=model_id) == stamp
    for name in ARCHIVE_NAMES:
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    b = CFModel.load(tmp_path / "b")
    assert b.model_id == model_id and stamp_of(b.info) == stamp
    assert b.scores("u1", ["s0", "s1"]) == CFModel.load(tmp_path / "a").scores("u1", ["s0", "s1"])
    assert leftovers(tmp_path / "b") == []


def test_pack_refuses_a_directory_that_does_not_match_its_manifest(tmp_path: Path) -> None:
    model_id = tiny_model(tmp_path / "a", NEW)
    with pytest.raises(CFShareError, match="not cf-other"):
        pack_cf(tmp_path / "a", expect_model_id="cf-other")
    with pytest.raises(CFShareError, match=r"does not match cf\.json"):
        (tmp_path / "a" / "ids.json").write_text('{"users": [], "items": []}')
        pack_cf(tmp_path / "a", expect_model_id=model_id)
    with pytest.raises(CFShareError, match="cannot read"):
        pack_cf(tmp_path / "nothing-here")


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "not a tar", "other model"])
def test_a_damaged_archive_is_refused_and_the_installed_model_stays(tmp_path: Path,
                                                                   damage: str) -> None:
    old_id = tiny_model(tmp_path / "b", OLD, seed=1)
    new_id = tiny_model(tmp_path / "a", NEW, seed=2)
    _, archive = pack_cf(tmp_path / "a")
    expect = new_id
    if damage == "flipped byte":  # tar still parses; the factors no longer match their sha256
        at = archive.find((tmp_path / "a" / "user_factors.npy").read_bytes()) + 140
        archive = archive[:at] + bytes([archive[at] ^ 0xFF]) + archive[at + 1:]
    elif damage == "truncated":
        archive = archive[: len(archive) // 2]
    elif damage == "not a tar":
        archive = b"\x00garbage" * 100
    else:  # a sound archive, but not the model the store row names
        expect = "cf-20990101T000000-deadbeef"
    with pytest.raises(CFShareError):
        install_cf(archive, tmp_path / "b", expect_model_id=expect)
    assert CFModel.load(tmp_path / "b").model_id == old_id
    assert leftovers(tmp_path / "b") == []


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("bad", ["../evil.npy", "/tmp/evil.npy", "sub/cf.json", "./cf.json",
                                 "symlink", "hardlink", "directory", "twice", "missing",
                                 "extra"])
def test_an_archive_may_hold_only_the_artifact_files(tmp_path: Path, bad: str) -> None:
    tiny_model(tmp_path / "a", NEW)
    files = {n: (tmp_path / "a" / n).read_bytes() for n in ARCHIVE_NAMES}
    members = [(_member(n), files[n]) for n in ARCHIVE_NAMES]
    if bad == "symlink":
        members[0] = (_member("user_factors.npy", tarfile.SYMTYPE, "/etc/passwd"), b"")
    elif bad == "hardlink":
        members[0] = (_member("user_factors.npy", tarfile.LNKTYPE, "../../x"), b"")
    elif bad == "directory":
        members[0] = (_member("user_factors.npy", tarfile.DIRTYPE), b"")
    elif bad == "twice":
        members.append((_member("cf.json"), files["cf.json"]))
    elif bad == "missing":
        members.pop(1)
    elif bad == "extra":
        members.append((_member("notes.txt"), b"hi"))
    else:
        members.append((_member(bad), b"x"))
    with pytest.raises(CFShareError):
        install_cf(tar_of(members), tmp_path / "b")
    assert not (tmp_path / "b").exists() and not (tmp_path / "evil.npy").exists()
    assert leftovers(tmp_path / "b") == []


def test_archives_are_size_bounded(tmp_path: Path) -> None:
    tiny_model(tmp_path / "a", NEW)
    _, archive = pack_cf(tmp_path / "a")
    with pytest.raises(CFShareError, match="limit"):
        install_cf(archive, tmp_path / "b", max_bytes=len(archive) - 1)
    with pytest.raises(CFShareError, match="limit"):
        pack_cf(tmp_path / "a", max_bytes=1000)
    assert not (tmp_path / "b").exists()


def test_one_order_on_every_replica() -> None:
    assert trained_at_seconds(NEWER) == trained_at_seconds("2026-01-01T00:00:00+00:00")  # naive=UTC
    assert trained_at_seconds("not a date") == 0.0 and trained_at_seconds(None) == 0.0
    assert ModelStamp(2.0, "a") > ModelStamp(1.0, "z") and ModelStamp(1.0, "b") > ModelStamp(1.0, "a")
    assert stamp_of({"trained_at": NEW}) is None  # no model id: nothing to compare or share


# ---- the stores -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_server() -> PgServer:
    """A throwaway PostgreSQL server for this module (skips without the binaries)."""
    yield from server_or_skip()


@pytest.fixture(params=["sqlite", "pg"])
async def store(request, tmp_path: Path) -> AsyncIterator[Store | PgStore]:
    if request.param == "sqlite":
        s = await Store.open(tmp_path / "db.sqlite3")
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        s = await PgStore.open(server.url(await server.create_database()))
    try:
        yield s
    finally:
        await s.close()


async def test_store_keeps_the_newest_models_idempotently(store) -> None:
    assert await store.cf_latest() is None and await store.cf_archive("cf-x") is None
    assert await store.cf_publish("cf-1", 100.0, b"one") is True
    assert await store.cf_publish("cf-1", 100.0, b"one") is False  # idempotent
    for i in range(2, 6):
        await store.cf_publish(f"cf-{i}", 100.0 + i, f"m{i}".encode())
    assert await store.cf_latest() == ("cf-5", 105.0)
    assert await store.cf_archive("cf-5") == b"m5"
    kept = [i for i in range(1, 6) if await store.cf_archive(f"cf-{i}") is not None]
    assert kept == list(range(6 - CF_MODELS_KEPT, 6))
    await store.cf_publish("cf-0", 1.0, b"old")  # older than all kept: dropped at once
    assert await store.cf_archive("cf-0") is None and await store.cf_latest() == ("cf-5", 105.0)
    with pytest.raises(ValueError, match="empty"):
        await store.cf_publish("cf-9", 1.0, b"")


# ---- replicas on one database -----------------------------------------------------------------
Opener = Callable[[str], Awaitable[Recommender]]


@pytest.fixture
async def cluster(pg_server: PgServer, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens replicas by name: own folder and CF_PATH each, one database, checks on every
    request (``CF_CHECK_INTERVAL_S=0``)."""
    url = pg_server.url(await pg_server.create_database())
    engines: list[Recommender] = []

    async def open_replica(name: str) -> Recommender:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        settings = make_settings(folder, database_url=url, cf_check_interval_s=0)
        engines.append(await Recommender.open(settings, classifier=KeywordClassifier()))
        return engines[-1]

    try:
        yield open_replica
    finally:
        for rec in engines:
            await rec.close()


async def checked(rec: Recommender) -> None:
    """One request, then wait for the background CF check it started."""
    reply = await rec.recommend("someone", "우울해")
    assert len(reply.tracks) == 5  # the request itself never waits for, or fails with, the check
    task = rec._cf_reload
    if task is not None:
        await asyncio.wait_for(asyncio.shield(task), 10)


def model_id(rec: Recommender) -> str | None:
    return None if rec.cf is None else rec.cf.model_id


async def test_a_model_that_lands_on_a_reaches_b_after_one_check(cluster: Opener) -> None:
    a, b = await cluster("a"), await cluster("b")
    assert a.settings.resolved_shared_state and model_id(a) is None and model_id(b) is None
    mid = tiny_model(a.settings.resolved_cf_path, NEW)  # e.g. a cron `train-cf --out` on A's host
    await checked(a)
    assert model_id(a) == mid
    assert await a.store.cf_latest() == (mid, trained_at_seconds(NEW))  # published by A
    await checked(b)
    assert model_id(b) == mid
    assert json.loads((b.settings.resolved_cf_path / "cf.json").read_text())["model_id"] == mid
    assert b.cf.scores("u1", ["s0"]) == a.cf.scores("u1", ["s0"])
    # and the next model, trained on B this time, travels back to A
    newer = tiny_model(b.settings.resolved_cf_path, NEWER, seed=3)
    await checked(b)
    await checked(a)
    assert model_id(a) == model_id(b) == newer


async def test_a_new_replica_starts_on_the_shared_model_not_its_older_local_one(
        cluster: Opener, tmp_path: Path) -> None:
    a = await cluster("a")
    shared = tiny_model(a.settings.resolved_cf_path, NEW, seed=1)
    await checked(a)
    (tmp_path / "b").mkdir()
    stale = tiny_model(make_settings(tmp_path / "b").resolved_cf_path, OLD, seed=2)
    b = await cluster("b")  # loads its stale local model, then adopts the newer shared one
    assert model_id(b) == shared
    await checked(b)
    assert await b.store.cf_latest() == (shared, trained_at_seconds(NEW))
    assert await b.store.cf_archive(stale) is None  # the older model was never published
    assert json.loads((b.settings.resolved_cf_path / "cf.json").read_text())["model_id"] == shared


async def test_store_failures_and_bad_archives_leave_b_serving_its_model(
        cluster: Opener, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    a, b = await cluster("a"), await cluster("b")
    first = tiny_model(a.settings.resolved_cf_path, OLD, seed=1)
    await checked(a)
    await checked(b)
    assert model_id(b) == first
    newer = tiny_model(a.settings.resolved_cf_path, NEW, seed=2)
    await checked(a)

    async def down(*args: object) -> None:
        raise StoreUnavailableError("reading the newest shared CF model failed: connection lost")

    for method in ("cf_latest", "cf_archive"):  # the store dies before, then during, the fetch
        with monkeypatch.context() as m:
            m.setattr(b.store, method, down)
            await checked(b)
        assert model_id(b) == first
    assert "current model keeps serving" in caplog.text

    await checked(b)  # the store is back: B catches up
    assert model_id(b) == newer

    # A row whose archive is garbage (a bad writer, a corrupted backup): refused, fetched once.
    bad = "cf-20250601T000000-bad"
    await a.store.cf_publish(bad, trained_at_seconds("2025-06-01T00:00:00+00:00"), b"x" * 512)
    fetched: list[str] = []
    real = b.store.cf_archive

    async def counting(mid: str) -> bytes | None:
        fetched.append(mid)
        return await real(mid)

    monkeypatch.setattr(b.store, "cf_archive", counting)
    await checked(b)
    await checked(b)
    assert model_id(b) == newer and fetched == [bad]
    assert CFModel.load(b.settings.resolved_cf_path).model_id == newer  # disk untouched too
    # a newer good model still gets through
    newest = tiny_model(a.settings.resolved_cf_path, NEWER, seed=3)
    await checked(a)
    await checked(b)
    assert model_id(b) == newest


async def _retrain_on_a_and_follow_on_b(a: Recommender, b: Recommender) -> None:
    """Feedback through A's store, ``/retrain`` on A (the real ``train-cf`` worker), then B
    adopts the published model at its next check."""
    songs = [a.index.song_id_at(i) for i in range(60)]
    n = 0
    for u in range(16):
        for song in (songs[:30] if u % 2 == 0 else songs[30:])[u % 3::3]:
            await a.store.save_recommendation(f"r{n}", f"user{u}", "console", [1 / 6] * 6,
                                              [(song, 0.5)], source="explicit")
            await a.store.add_feedback(f"r{n}", song, f"user{u}", "like")
            n += 1
    result = await a.retrain_cf(timeout=120)
    assert result["shared"] is True and result["model"] == model_id(a)
    assert (await b.store.cf_latest())[0] == model_id(a)
    await checked(b)
    assert model_id(b) == model_id(a) and b.cf.scores("user0", songs[:3]) is not None


async def test_retrain_on_one_process_publishes_and_the_other_follows(tmp_path: Path) -> None:
    """The admin /retrain path end to end, on the SQLite twin of the table: two processes on
    one database file with SHARED_STATE=true and their own CF_PATHs."""
    engines: list[Recommender] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            settings = make_settings(tmp_path / name, database_path=tmp_path / "shared.sqlite3",
                                     shared_state=True, cf_check_interval_s=0)
            engines.append(await Recommender.open(settings, classifier=KeywordClassifier()))
        await _retrain_on_a_and_follow_on_b(*engines)
    finally:
        for rec in engines:
            await rec.close()


async def test_retrain_on_a_postgresql_replica_trains_from_postgresql(cluster: Opener,
                                                                      monkeypatch) -> None:
    """On PostgreSQL the worker reads the store through DATABASE_URL, handed over in its
    environment (a password must never be on a command line everyone's ``ps`` shows)."""
    a, b = await cluster("a"), await cluster("b")
    seen: list[list[str]] = []
    real = asyncio.create_subprocess_exec

    async def spy(*cmd, **kw):
        seen.append([str(c) for c in cmd])
        assert kw["env"]["DATABASE_URL"] == a.settings.database_url.get_secret_value()
        return await real(*cmd, **kw)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    await _retrain_on_a_and_follow_on_b(a, b)
    assert seen and "--db" not in seen[0] and not any("postgresql://" in c for c in seen[0])


def test_publish_cf_command_hands_a_model_trained_elsewhere_to_the_store(
        tmp_path: Path, capsys, monkeypatch) -> None:
    """``moodtune publish-cf``: a cron/Spark trainer's model goes into cf_models (once), and a
    missing folder is a clear exit 1, not a traceback."""
    import argparse

    from bot import publish_cf_cli

    monkeypatch.chdir(tmp_path)  # no stray .env
    mid = tiny_model(tmp_path / "cf", "2026-11-01T00:00:00+00:00")
    db = tmp_path / "bot.sqlite3"

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser()
        publish_cf_cli.configure(parser)
        return publish_cf_cli.run(parser.parse_args(list(argv)))

    assert run("--cf", str(tmp_path / "cf"), "--db", str(db)) == 0
    assert f"CF model {mid} published" in capsys.readouterr().out
    assert run("--cf", str(tmp_path / "cf"), "--db", str(db)) == 0
    assert "already in the store" in capsys.readouterr().out

    async def latest() -> tuple[str, float] | None:
        store = await Store.open(db)
        try:
            return await store.cf_latest()
        finally:
            await store.close()

    assert asyncio.run(latest())[0] == mid
    assert run("--cf", str(tmp_path / "nothing"), "--db", str(db)) == 1
    assert "moodtune publish-cf:" in capsys.readouterr().err
