"""Interrupted crawls resume with no song lost and no finished song fetched again."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawler.arena import SongSeed
from crawler.fake_melon import FakeMelon, FakeSong, ThreadedFakeMelon
from crawler.http import HttpConfig, PoliteHttp
from crawler.melon import Crawler, MelonClient
from crawler.state import FINAL_STATUSES, CrawlState

ROOT = Path(__file__).resolve().parents[1]
N = 30


def make_songs(n: int = N) -> list[FakeSong]:
    return [FakeSong(1000 + i, f"노래{i}", [f"가수{i}"], album_id=500 + i) for i in range(n)]


def make_seeds(n: int = N) -> list[SongSeed]:
    return [SongSeed(f"s{i}", f"노래{i}", (f"가수{i}",), album_id=500 + i) for i in range(n)]


def statuses(db: Path) -> dict[str, str]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT seed_id, status FROM crawl_songs"))
    finally:
        con.close()


def assert_resumed_cleanly(fake: FakeMelon, done_before: set[str], final: dict[str, str]) -> None:
    assert set(final) == {f"s{i}" for i in range(N)}
    assert all(st in FINAL_STATUSES for st in final.values()), final
    assert all(st == "found" for st in final.values())
    for i in range(N):
        hits = fake.hits[("song", 1000 + i)]
        if f"s{i}" in done_before:
            assert hits == 1, f"s{i} finished before the interruption but was fetched {hits}x"
        else:
            # At most the one in flight when interrupted, plus the one that finished it.
            assert 1 <= hits <= 2, (i, hits)


async def test_cancel_mid_crawl_resumes(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    fake = FakeMelon(make_songs(), latency=0.01)
    cfg = HttpConfig(min_interval=0.005, jitter=0.0, concurrency=3, timeout=2, max_retries=1,
                     backoff_base=0.01)
    async with fake:
        cfg.base_url = fake.base_url
        async with CrawlState(db) as state:
            await state.add_seeds(make_seeds())
            async with PoliteHttp(cfg) as http:
                task = asyncio.create_task(Crawler(state, MelonClient(http), concurrency=3)
                                           .run_pending())
                while (await state.counts())["found"] < 8:
                    await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
        before = statuses(db)
        done_before = {k for k, v in before.items() if v != "pending"}
        assert 8 <= len(done_before) < N
        async with CrawlState(db) as state, PoliteHttp(cfg) as http:
            n = await Crawler(state, MelonClient(http), concurrency=3).run_pending()
        assert n == N - len(done_before)
    assert_resumed_cleanly(fake, done_before, statuses(db))


@pytest.mark.slow
def test_kill_9_subprocess_resumes(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    csv = tmp_path / "songs.csv"
    csv.write_text("id,title,artist,album_id\n" + "".join(
        f"s{i},노래{i},가수{i},{500 + i}\n" for i in range(N)), encoding="utf-8")
    fake = FakeMelon(make_songs(), latency=0.02)
    with ThreadedFakeMelon(fake) as server:
        cmd = [sys.executable, "-m", "bot", "crawl", "--songs", str(csv), "--db", str(db),
               "--base-url", server.base_url, "--min-interval", "0.03", "--jitter", "0",
               "--concurrency", "2", "--no-progress"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if db.exists():
                    try:
                        if sum(st != "pending" for st in statuses(db).values()) >= 6:
                            break
                    except sqlite3.OperationalError:
                        pass  # schema not created yet
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(10)
        before = statuses(db)
        done_before = {k for k, v in before.items() if v != "pending"}
        assert 6 <= len(done_before) < N, len(done_before)

        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
        assert "found" in done.stderr.decode()
        final = statuses(db)
    assert_resumed_cleanly(fake, done_before, final)
