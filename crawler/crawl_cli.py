"""``moodtune crawl`` — collect lyrics for seed songs from Melon into a local SQLite crawl DB.

Melon's robots.txt disallows nearly everything for generic crawlers and its terms restrict
copying; so the default run explains that and stops. ``--i-have-permission`` is required to
crawl the real site (robots.txt is still obeyed unless ``--ignore-robots`` is also given), and
the real site is never paced faster than one request per 2 s per host. Redirects are followed
only where a first request could go (see ``crawler.http``); ``--allow-host`` widens that.
Lyrics stay in the local DB; only derived emotion vectors belong in the catalogue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawler.state import CrawlState

REFUSAL = """\
moodtune crawl: refusing to crawl {host} without explicit permission.

  Melon's robots.txt disallows nearly all paths for generic crawlers, and its terms of service
  restrict automated collection and reuse of its content (lyrics are copyrighted).
  Crawl only if you have the site's (or the rights holders') permission, e.g. for private
  research, and keep the lyrics in your local crawl DB.

  If you do have permission, rerun with --i-have-permission (robots.txt is still respected;
  --ignore-robots additionally overrides it). The pace is one request every
  {interval:.1f}+ s per host (never faster than 2 s on Melon).
"""

EXIT_OK, EXIT_USAGE, EXIT_BLOCKED, EXIT_INTERRUPTED = 0, 2, 3, 130


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags for ``moodtune crawl`` (no heavy imports here: ``moodtune --help`` stays fast)."""
    parser.add_argument("--songs", type=Path,
                        help="seed songs: Kakao Arena song_meta.json, or a CSV with title,artist")
    parser.add_argument("--genres", type=Path,
                        help="Kakao Arena genre_gn_all.json (for the instrumental-genre filter)")
    parser.add_argument("--db", type=Path, default=Path("var/crawl.sqlite3"),
                        help="crawl state + lyrics DB (default: %(default)s); resumes if present")
    parser.add_argument("--base-url", default="https://www.melon.com", help="site root")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="parallel workers/connections (rate limit still applies)")
    parser.add_argument("--min-interval", type=float, default=2.0,
                        help="seconds between requests per host, plus jitter (default: 2.0; "
                             "never below 2.0 for melon.com hosts)")
    parser.add_argument("--jitter", type=float, default=0.25,
                        help="extra random fraction of --min-interval per request (default 0.25)")
    parser.add_argument("--timeout", type=float, default=20.0, help="per-request timeout (s)")
    parser.add_argument("--max-retries", type=int, default=4)
    parser.add_argument("--max-blocks", type=int, default=5,
                        help="stop after this many consecutive 403/429 answers")
    parser.add_argument("--user-agent", default=None, help="User-Agent header (identify yourself)")
    parser.add_argument("--limit", type=int, default=None, help="crawl at most N songs this run")
    parser.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                        help="another host redirects may lead to (repeatable); by default "
                             "only --base-url's host is crawled")
    parser.add_argument("--i-have-permission", action="store_true",
                        help="confirm you may crawl the real melon.com (required for it)")
    parser.add_argument("--ignore-robots", action="store_true",
                        help="do not obey robots.txt (only with the site's permission)")
    parser.add_argument("--retry-errors", action="store_true",
                        help="also retry songs that ended in 'error'")
    parser.add_argument("--refetch", action="store_true", help="crawl every song again")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Entry point: returns 0 ok, 2 usage/refused, 3 blocked/robots, 130 interrupted."""
    import asyncio
    from urllib.parse import urlsplit

    from crawler.http import DEFAULT_USER_AGENT, host_key, is_melon_host, min_interval_floor

    if is_melon_host(args.base_url) and not args.i_have_permission:
        floor = min_interval_floor(urlsplit(args.base_url).netloc)
        print(REFUSAL.format(host=args.base_url, interval=max(args.min_interval, floor)),
              file=sys.stderr)
        return EXIT_USAGE
    if args.min_interval < 0 or args.concurrency < 1:
        print("moodtune crawl: --min-interval must be >= 0 and --concurrency >= 1",
              file=sys.stderr)
        return EXIT_USAGE
    for host in args.allow_host:
        try:
            host_key(host)
        except ValueError as exc:
            print(f"moodtune crawl: --allow-host {host!r}: {exc}; give HOST or HOST:PORT",
                  file=sys.stderr)
            return EXIT_USAGE
    args.user_agent = args.user_agent or DEFAULT_USER_AGENT
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        print("\ninterrupted: every finished song is saved; rerun the same command to resume.",
              file=sys.stderr)
        return EXIT_INTERRUPTED


async def _main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from crawler.arena import FilterStats, SeedFileError, load_seeds
    from crawler.http import CrawlBlockedError, HttpConfig, PoliteHttp, RobotsDisallowedError
    from crawler.melon import SONG_PATH, Crawler, MelonClient
    from crawler.state import CrawlState

    lock = _lock_db(args.db)
    if lock is False:
        print(f"moodtune crawl: another crawl is already using {args.db}; wait for it or pass "
              "a different --db.", file=sys.stderr)
        return EXIT_USAGE
    async with CrawlState(args.db) as state:
        if args.songs is not None:
            stats = FilterStats()
            if args.songs.suffix.lower() == ".json" and args.genres is None:
                print("note: no --genres map given; instrumental-genre filtering is off "
                      "(pass genre_gn_all.json)", file=sys.stderr)
            try:
                added = await state.add_seeds(load_seeds(args.songs, args.genres, stats))
            except (SeedFileError, OSError) as exc:
                print(f"moodtune crawl: {exc}", file=sys.stderr)
                return EXIT_USAGE
            print(f"seeds: {stats.summary()}; {added} new in {args.db}", file=sys.stderr)
        todo = await state.todo_count(retry_errors=args.retry_errors, refetch=args.refetch)
        if args.limit is not None:
            todo = min(todo, args.limit)
        if todo == 0:
            print("nothing to crawl (all songs finished; --retry-errors / --refetch to redo)",
                  file=sys.stderr)
            await _summary(state)
            return EXIT_OK

        cfg = HttpConfig(base_url=args.base_url, user_agent=args.user_agent,
                         min_interval=args.min_interval, jitter=args.jitter,
                         concurrency=args.concurrency, timeout=args.timeout,
                         max_retries=args.max_retries, max_consecutive_blocks=args.max_blocks,
                         respect_robots=not args.ignore_robots,
                         allowed_hosts=tuple(args.allow_host),
                         have_permission=args.i_have_permission)
        counts: dict[str, int] = {}
        bar = tqdm(total=todo, unit="song", disable=args.no_progress, dynamic_ncols=True,
                   smoothing=0.05)

        def on_result(_seed: object, result: object) -> None:
            status = getattr(result, "status", "?")
            counts[status] = counts.get(status, 0) + 1
            bar.update(1)
            bar.set_postfix(counts, refresh=False)

        rc = EXIT_OK
        try:
            async with PoliteHttp(cfg) as http:
                # Fail fast (one robots.txt request) instead of recording every song as an error.
                await http.check_robots(http.url(SONG_PATH) + "?songId=1")
                crawler = Crawler(state, MelonClient(http), concurrency=args.concurrency,
                                  on_result=on_result)
                await crawler.run_pending(retry_errors=args.retry_errors, refetch=args.refetch,
                                          limit=args.limit)
        except RobotsDisallowedError as exc:
            print(f"\nmoodtune crawl: {exc}", file=sys.stderr)
            rc = EXIT_BLOCKED
        except CrawlBlockedError as exc:
            print(f"\nmoodtune crawl: {exc}", file=sys.stderr)
            rc = EXIT_BLOCKED
        finally:
            bar.close()
        await _summary(state)
        return rc


async def _summary(state: CrawlState) -> None:
    counts = await state.counts()
    reasons = await state.reasons()
    total = sum(counts.values())
    print(f"crawl DB {state.path}: {total} songs", file=sys.stderr)
    for status, n in counts.items():
        print(f"  {status:<10} {n:>8}", file=sys.stderr)
        for (st, reason), m in sorted(reasons.items(), key=lambda kv: -kv[1]):
            if st == status and reason:
                print(f"      {reason:<40} {m:>8}", file=sys.stderr)


def _lock_db(db: Path) -> object:
    """Exclusive advisory lock next to the DB: two crawls on one DB would fetch songs twice.

    Returns the open lock file (keep it referenced), False if another process holds it, or
    None where ``fcntl`` is unavailable (Windows). The OS drops the lock when the process dies,
    even on ``kill -9``.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    db.parent.mkdir(parents=True, exist_ok=True)
    fh = open(db.with_name(db.name + ".lock"), "w")  # noqa: SIM115 (held for the whole run)
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return False
    return fh
