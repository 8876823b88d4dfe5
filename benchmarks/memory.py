"""Per-user memory under a flood of distinct user ids: RSS growth after 1,000,000 users.

    python -m benchmarks.memory            # 1,000,000 ids, 20,000 real requests
    python -m benchmarks.memory --quick    # 1,000,000 ids, 5,000 real requests

A Kakao skill without a secret takes whatever ``user.id`` arrives, so every byte kept per id is
a memory hole unless it is capped. Each run starts a fresh process with the engine on a
300-song synthetic catalogue and a keyword classifier (the model's memory is not the question),
then:

1. warms up with 2,000 real requests and reads VmRSS (the baseline);
2. sends 1,000,000 distinct ids through everything that keeps per-user state: the engine's
   memory of each answer (``Recommender._remember``: no-repeat list and conversation thread)
   and the per-user rate limiters (recommendations and feedback), as the adapters call them;
3. sends N more *real* requests (classify, search, rank, remember) from N new ids;

and reports the RSS growth over the baseline. The same run repeats it with the obvious
alternative, an unbounded per-user map (the cap set to 10,000,000, as before issue 10).

Results: table on stdout, JSON in ``benchmarks/results/memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import machine, write_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "memory.json"


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


async def _one(cap: int, ids: int, real: int) -> dict:
    from bot.engine import Recommendation, Recommender, Track
    from bot.ratelimit import RateLimiter
    from bot.settings import Settings
    from indexing.synthetic import synthetic_catalog
    from inference.keyword import KeywordClassifier

    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog.jsonl"
        synthetic_catalog(300, seed=7).save(catalog)
        settings = Settings(_env_file=None, data_dir=Path(tmp) / "var", catalog_path=catalog,
                            user_state_max_users=cap)
        engine = await Recommender.open(settings, classifier=KeywordClassifier(),
                                        use_store=False)
        limiter = RateLimiter(settings.rate_limit_per_minute)
        feedback_limiter = RateLimiter(settings.feedback_rate_limit_per_minute)
        try:
            for i in range(2000):
                await engine.recommend_mood(f"warm:{i}", i % 6)
            template = await engine.recommend_mood("warm:template", "평화")
            gc.collect()
            base = _rss_mb()
            t0 = time.perf_counter()
            for i in range(ids):
                uid = f"kakao:{i:012d}"
                limiter.hit(uid)
                feedback_limiter.hit(uid)
                rec = Recommendation(rec_id=f"{i:016x}", user_id=uid, emotion=template.emotion,
                                     source="explicit", tracks=[
                                         Track(t.song_id, t.title, t.artist, t.score, t.vector,
                                               t.reason, t.link) for t in template.tracks])
                await engine._remember(rec, "kakao", None)
            flood_s = time.perf_counter() - t0
            gc.collect()
            after_ids = _rss_mb()
            t0 = time.perf_counter()
            for i in range(real):
                await engine.recommend(f"real:{i}", "오늘 너무 우울해", channel="kakao")
            real_s = time.perf_counter() - t0
            gc.collect()
            after_real = _rss_mb()
            return {"cap": cap, "ids": ids, "real_requests": real, "baseline_mb": round(base, 1),
                    "growth_after_ids_mb": round(after_ids - base, 1),
                    "growth_after_real_mb": round(after_real - base, 1),
                    "users_in_memory": len(engine.users), "evicted": engine.users.evicted,
                    "rate_limiter_keys": len(limiter._hits),
                    "ids_per_s": round(ids / flood_s), "real_req_per_s": round(real / real_s)}
        finally:
            await engine.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5,000 real requests instead of 20,000")
    ap.add_argument("--ids", type=int, default=1_000_000)
    ap.add_argument("--child", nargs=3, type=int, metavar=("CAP", "IDS", "REAL"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_one(*args.child))))
        return 0
    from bot.settings import Settings

    real = 5_000 if args.quick else 20_000
    default_cap = Settings.model_fields["user_state_max_users"].default
    rows = {}
    for name, cap in (("bounded (default cap)", default_cap), ("unbounded (before)", 10_000_000)):
        out = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--child", str(cap),
                              str(args.ids), str(real)], cwd=ROOT, capture_output=True,
                             text=True, timeout=1800)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 1
        rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nRSS growth after {args.ids:,} distinct user ids (+ {real:,} real requests), "
          "fresh process each")
    print(f"{'per-user memory':<24}{'cap':>12}{'users kept':>12}{'+MB ids':>10}{'+MB real':>10}"
          f"{'ids/s':>10}{'req/s':>8}")
    for name, r in rows.items():
        print(f"{name:<24}{r['cap']:>12,}{r['users_in_memory']:>12,}"
              f"{r['growth_after_ids_mb']:>10.1f}{r['growth_after_real_mb']:>10.1f}"
              f"{r['ids_per_s']:>10,}{r['real_req_per_s']:>8,}")
    b, u = rows["bounded (default cap)"], rows["unbounded (before)"]
    ok = b["growth_after_real_mb"] <= 50
    print(f"bounded growth {b['growth_after_real_mb']:.1f} MB ({'≤' if ok else '>'} 50 MB target);"
          f" unbounded grows {u['growth_after_real_mb'] / max(b['growth_after_real_mb'], 0.1):.0f}x"
          " as much")
    write_results(RESULTS, {"machine": machine(), "rows": rows, "target_mb": 50,
                            "meets_target": ok, "quick": args.quick})
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
