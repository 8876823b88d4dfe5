"""Benchmark ``Recommender.recommend`` end to end: many concurrent users, latency, loop stalls.

    python -m benchmarks.engine            # 100 users for 20 s (after a 2 s warm-up)
    python -m benchmarks.engine --quick    # 100 users for 6 s

The engine runs on the shipped model and the shipped catalogue (index built into a temp dir)
with a real SQLite store, exactly as ``moodtune run`` does. Each of N users sends sentences in a
loop: paced (each waits for its answer, then "thinks" so that ~220 requests/s are offered in
all) and saturated (no pause: the most the engine can serve). Measured: requests/s, latency
p50/p99/max, and event-loop stalls — a ticker task asks to wake every 5 ms and records how late
it wakes; a stall is the worst lateness, i.e. how long one handler could not run.

The same load is run, in the same process and run, against the obvious alternative: the engine
doing its CPU work (ONNX, Annoy, re-ranking) inline on the event loop instead of in its worker
pool, which is what a naive async bot does. Its stalls show why the pool exists.

Results: table on stdout, JSON in ``benchmarks/results/engine.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import write_results

RESULTS = Path(__file__).resolve().parent / "results" / "engine.json"
SENTENCES = [
    "오늘 너무 지치고 우울해", "시험 끝나서 너무 행복해", "내일 발표라 너무 떨려", "진짜 열받아 왜 저래",
    "주말 아침에 커피 한잔 하니까 편안하다", "그냥 밥 먹고 집에 가는 중", "헤어지고 나니까 눈물만 나",
    "합격했다 대박", "밤길이 너무 무서워", "아무것도 하기 싫고 외로워", "비 오는 소리 들으니 차분해져",
    "친구가 약속을 또 어겼어 짜증나", "월급날이라 신난다", "면접 결과 기다리는 중인데 초조해",
    "산책하고 왔더니 마음이 가벼워", "내일 회의 몇 시였지", "퇴근하고 누우니까 살 것 같다",
    "너무 보고 싶어서 잠이 안 와", "오랜만에 가족이랑 저녁 먹어서 좋았어", "시끄러워서 집중이 안 돼",
]


class _Inline:
    """Runs executor work on the calling thread: the engine without its worker pool."""

    def submit(self, fn, *args):  # pragma: no cover - exercised by the benchmark only
        import concurrent.futures

        f: concurrent.futures.Future = concurrent.futures.Future()
        try:
            f.set_result(fn(*args))
        except BaseException as exc:
            f.set_exception(exc)
        return f

    def shutdown(self, *a, **k) -> None:
        pass


async def _load(rec, users: int, seconds: float, warmup: float,
                think: float | None = None) -> dict[str, Any]:
    """``users`` chat in parallel; each waits for its answer, then ``think`` s (exponential)
    before the next message. ``think=None``: no pause at all (saturation, max requests/s)."""
    lat: list[float] = []
    stalls: list[float] = []
    errors = 0
    stop = asyncio.Event()
    measuring = False

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.005)
            if measuring:
                stalls.append(loop.time() - t - 0.005)

    async def user(i: int) -> None:
        nonlocal errors
        n = i
        rng = np.random.default_rng(i)
        while not stop.is_set():
            if think:
                await asyncio.sleep(float(rng.exponential(think)))
            text = f"{SENTENCES[n % len(SENTENCES)]} {n % 7}"
            n += 1
            t = time.perf_counter()
            try:
                r = await rec.recommend(f"bench-{i}", text, channel="bench")
                assert len(r.tracks) == rec.settings.rec_k
            except Exception:
                errors += 1
                await asyncio.sleep(0.01)  # a refused client waits a little before retrying
                continue
            if measuring:
                lat.append(time.perf_counter() - t)

    tasks = [asyncio.create_task(ticker())] + [asyncio.create_task(user(i))
                                                for i in range(users)]
    await asyncio.sleep(warmup)
    measuring = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - t0
    stop.set()
    await asyncio.gather(*tasks)
    a = np.asarray(lat) * 1000
    s = np.asarray(stalls or [0.0]) * 1000
    return {
        "users": users, "requests": len(lat), "errors": errors,
        "rps": round(len(lat) / elapsed, 1),
        "p50_ms": round(float(np.percentile(a, 50)), 2) if len(a) else None,
        "p99_ms": round(float(np.percentile(a, 99)), 2) if len(a) else None,
        "max_ms": round(float(a.max()), 2) if len(a) else None,
        "loop_stall_p99_ms": round(float(np.percentile(s, 99)), 2),
        "loop_stall_max_ms": round(float(s.max()), 2),
    }


async def _single(rec, n: int = 200) -> dict[str, Any]:
    """One user, one request at a time: the latency a person sees on an idle bot."""
    lat = []
    for i in range(n):
        t = time.perf_counter()
        await rec.recommend("solo", SENTENCES[i % len(SENTENCES)] + f" {i}", channel="bench")
        lat.append(time.perf_counter() - t)
    a = np.asarray(lat[10:]) * 1000
    return {"users": 1, "requests": len(a), "errors": 0,
            "rps": round(len(a) / (a.sum() / 1000), 1),
            "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2), "loop_stall_p99_ms": None,
            "loop_stall_max_ms": None}


async def run(users: int, seconds: float, warmup: float, target_rps: int) -> dict[str, Any]:
    from bot.engine import Recommender
    from bot.settings import Settings
    from inference.classifier import EmotionClassifier

    clf = EmotionClassifier.load(threads=1)
    rows = []
    with tempfile.TemporaryDirectory() as td:
        # The admission limit (ENGINE_MAX_PENDING) is measured in benchmarks/kakao.py; here the
        # question is the engine's own speed, so every user is admitted.
        settings = Settings(_env_file=None, data_dir=Path(td) / "var",
                            rate_limit_per_minute=10**9, engine_max_pending=10_000)
        rec = await Recommender.open(settings, classifier=clf)
        n_songs = len(rec.index)
        rows.append({"mode": "engine, 1 user sequential", **await _single(rec)})
        think = users / target_rps
        for label, pool in (("worker pool", None), ("inline on the loop", _Inline())):
            saved = rec._pool
            if pool is not None:
                rec._pool = pool  # the naive alternative: CPU work on the event loop
            rows.append({"mode": f"{label}: {users} users, ~{target_rps} req/s offered",
                         **await _load(rec, users, seconds, warmup, think)})
            rows.append({"mode": f"{label}: {users} users, saturated",
                         **await _load(rec, users, seconds, warmup)})
            rec._pool = saved
        await rec.close()
    return {"model": {"variant": clf.variant, "fingerprint": clf.fingerprint},
            "songs": n_songs, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--rps", type=int, default=220,
                    help="offered load in the paced runs (users think users/rps s between messages)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    seconds = args.seconds or (6.0 if args.quick else 20.0)
    res = asyncio.run(run(args.users, seconds, 2.0, args.rps))
    cols = ("mode", "rps", "p50_ms", "p99_ms", "max_ms", "loop_stall_p99_ms",
            "loop_stall_max_ms", "requests", "errors")
    print(f"recommend() end to end: model {res['model']['variant']} "
          f"{res['model']['fingerprint']}, {res['songs']} songs, SQLite store, {seconds:.0f} s")
    print(" | ".join(cols))
    for r in res["rows"]:
        print(" | ".join(str(r[c]) for c in cols))
    paced, sat, inl_paced, inl_sat = res["rows"][1:5]
    print(f"worker pool vs inline, paced: p99 {paced['p99_ms']} vs {inl_paced['p99_ms']} ms, "
          f"max loop stall {paced['loop_stall_max_ms']} vs {inl_paced['loop_stall_max_ms']} ms; "
          f"saturated: {sat['rps'] / max(inl_sat['rps'], 1e-9):.2f}x requests/s")
    targets = {"p50_le_10ms_at_offered_load": paced["p50_ms"] <= 10,
               "sustains_200_rps_with_100_users": paced["rps"] >= 200 and paced["errors"] == 0,
               "loop_stall_le_50ms": paced["loop_stall_max_ms"] <= 50
               and sat["loop_stall_max_ms"] <= 50}
    print("targets: " + ", ".join(f"{k}={'OK' if v else 'MISSED'}" for k, v in targets.items()))
    write_results(args.out, {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": seconds, **res, "targets": targets})
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
