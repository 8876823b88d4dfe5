"""Crawler throughput vs. politeness, against the local fake Melon.

Question: how fast does the crawler go at concurrency 1 / 4 / 16 when every request takes
200 ms and 5% fail (500s and hangs past the client timeout), and does the per-host rate limit
hold — is the *server-measured* number of requests in any 1-second window ever above the
configured rate? The obvious alternative (no rate limiter, concurrency 16) runs in the same
invocation to show what the limiter prevents. Every song must end in a final status.

    python -m benchmarks.crawler --quick      # < 60 s
    python -m benchmarks.crawler              # 200 songs per row

Writes ``benchmarks/results/crawler.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import write_results  # noqa: E402
from crawler.arena import SongSeed  # noqa: E402
from crawler.fake_melon import FakeMelon, FakeSong, ThreadedFakeMelon  # noqa: E402
from crawler.http import HttpConfig, PoliteHttp  # noqa: E402
from crawler.melon import Crawler, MelonClient  # noqa: E402
from crawler.state import CrawlState  # noqa: E402


@dataclass
class Row:
    name: str
    concurrency: int
    rate_limit: float | None
    songs: int
    seconds: float
    songs_per_s: float
    requests: int
    retries: int
    max_req_in_1s: int
    limit_held: bool | None
    final: int
    found: int
    errors: int
    pending: int


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """Largest number of arrivals in any half-open window [t, t+window)."""
    times = sorted(times)
    best = j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def crawl_once(base_url: str, n: int, concurrency: int, rate: float | None,
                     timeout: float) -> tuple[float, int, int, dict[str, int]]:
    seeds = [SongSeed(f"s{i}", f"노래{i}", (f"가수{i}",), album_id=10_000 + i) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = HttpConfig(base_url=base_url, min_interval=(1.0 / rate) if rate else 0.0,
                         jitter=0.1, concurrency=concurrency, timeout=timeout, max_retries=3,
                         backoff_base=0.2, backoff_max=2.0)
        async with CrawlState(Path(tmp) / "bench.sqlite3") as state:
            await state.add_seeds(seeds)
            t0 = time.perf_counter()
            async with PoliteHttp(cfg) as http:
                await Crawler(state, MelonClient(http), concurrency=concurrency).run_pending()
            elapsed = time.perf_counter() - t0
            counts = dict(await state.counts())
    return elapsed, http.requests, http.retries, counts


def run_row(name: str, n: int, concurrency: int, rate: float | None, latency: float,
            error_rate: float, seed: int) -> Row:
    timeout = 1.0
    songs = [FakeSong(1_000_000 + i, f"노래{i}", [f"가수{i}"], album_id=10_000 + i)
             for i in range(n)]
    fake = FakeMelon(songs, latency=latency, error_rate=error_rate, hang_s=timeout + 0.5,
                     rng_seed=seed)
    with ThreadedFakeMelon(fake) as server:
        elapsed, requests, retries, counts = asyncio.run(
            crawl_once(server.base_url, n, concurrency, rate, timeout))
        arrivals = [t for t, _ in list(server.log)]
    peak = max_in_window(arrivals)
    final = sum(v for k, v in counts.items() if k != "pending")
    return Row(name=name, concurrency=concurrency, rate_limit=rate, songs=n,
               seconds=round(elapsed, 2), songs_per_s=round(n / elapsed, 2), requests=requests,
               retries=retries, max_req_in_1s=peak,
               limit_held=(peak <= rate) if rate else None, final=final,
               found=counts.get("found", 0), errors=counts.get("error", 0),
               pending=counts.get("pending", 0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 songs per row (< 60 s)")
    ap.add_argument("--songs", type=int, default=None)
    ap.add_argument("--rate", type=float, default=20.0, help="requests/s per host")
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--error-rate", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/crawler.json")
    args = ap.parse_args(argv)
    n = args.songs or (30 if args.quick else 200)

    plan = [(f"limited c={c}", c, args.rate) for c in (1, 4, 16)]
    plan.append(("no limiter c=16 (alternative)", 16, None))
    rows = []
    for i, (name, c, rate) in enumerate(plan):
        rows.append(run_row(name, n, c, rate, args.latency, args.error_rate, seed=i))
        r = rows[-1]
        print(f"  done {name}: {r.songs_per_s} songs/s", file=sys.stderr)

    hdr = (f"{'run':<30} {'conc':>4} {'limit/s':>7} {'songs':>5} {'sec':>6} {'songs/s':>7} "
           f"{'reqs':>5} {'retry':>5} {'max/1s':>6} {'held':>5} {'final':>5} {'found':>5} "
           f"{'err':>4}")
    print(f"\nfake Melon: {args.latency * 1000:.0f} ms latency, {args.error_rate:.0%} injected "
          f"errors (500 / hang > 1 s timeout), 2 requests per song (album + song page)\n")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        lim = f"{r.rate_limit:.0f}" if r.rate_limit else "-"
        held = "-" if r.limit_held is None else ("yes" if r.limit_held else "NO")
        print(f"{r.name:<30} {r.concurrency:>4} {lim:>7} {r.songs:>5} {r.seconds:>6.1f} "
              f"{r.songs_per_s:>7.2f} {r.requests:>5} {r.retries:>5} {r.max_req_in_1s:>6} "
              f"{held:>5} {r.final:>5} {r.found:>5} {r.errors:>4}")
    all_final = all(r.pending == 0 and r.final == r.songs for r in rows)
    held = all(r.limit_held for r in rows if r.limit_held is not None)
    print(f"\nrate limit held in every limited run: {held}; every song final: {all_final}")

    write_results(args.out, {
        "benchmark": "crawler", "quick": args.quick, "songs_per_row": n,
        "latency_s": args.latency, "error_rate": args.error_rate, "rate_limit": args.rate,
        "python": platform.python_version(), "machine": platform.machine(),
        "rate_limit_held": held, "all_final": all_final,
        "rows": [asdict(r) for r in rows],
    })
    print(f"wrote {args.out}")
    return 0 if (held and all_final) else 1


if __name__ == "__main__":
    raise SystemExit(main())
