"""``moodtune train-cf`` — learn each person's taste from their reactions (ALS) and save it.

Reads the bot's database read-only (safe while the bot runs), writes a new CF artifact beside
the old one and renames it into place; the running bot picks it up with ``/retrain`` (which
runs this very command in a worker process) or at its next start. With no feedback in the
window, or on any failure, the previous model is left as it was and the exit status is 1.

This module cannot import ``bot`` (``training/`` must not), so ``DATABASE_PATH``/``DATA_DIR``
are not read here: the defaults below are the settings' defaults; pass ``--db``/``--out`` when
yours differ.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_DB = Path("var/moodtune.sqlite3")
DEFAULT_OUT = Path("var/cf")


def _timestamp(text: str) -> float:
    """Unix seconds, or an ISO date/datetime (naive = UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither unix seconds nor an ISO date like 2026-11-01") from exc
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def configure(parser: argparse.ArgumentParser) -> None:
    import os

    # ALS wants one BLAS thread; OpenBLAS reads this when numpy first loads it, which is the
    # import below (threadpoolctl also caps it around the fit, for callers that import earlier).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from training.cf import CFConfig

    d = CFConfig()
    parser.add_argument("--db", type=Path, default=DEFAULT_DB,
                        help=f"the bot's SQLite database (DATABASE_PATH; default {DEFAULT_DB})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"CF artifact directory to create or replace (CF_PATH; default "
                             f"{DEFAULT_OUT})")
    parser.add_argument("--catalog", type=Path, default=None,
                        help="the catalogue the bot serves (CATALOG_PATH; default: the shipped "
                             "starter); its artists and genres let CF share evidence across "
                             "songs. A missing/unreadable one only disables that, with a warning")
    parser.add_argument("--since", type=_timestamp, default=None,
                        help="only events at or after this time (unix seconds or ISO date)")
    parser.add_argument("--until", type=_timestamp, default=None,
                        help="only events before this time (unix seconds or ISO date)")
    parser.add_argument("--factors", type=int, default=d.factors, help="latent factors")
    parser.add_argument("--iterations", type=int, default=d.iterations, help="ALS sweeps")
    parser.add_argument("--regularization", type=float, default=d.regularization)
    parser.add_argument("--alpha", type=float, default=d.alpha,
                        help="confidence per unit of signal weight: c = 1 + alpha*|w|")
    parser.add_argument("--side-weight", type=float, default=d.side_weight,
                        help="how much a reaction to a song also counts for its artist and genre "
                             "(0 = plain song-level ALS)")
    parser.add_argument("--half-life-days", type=float, default=None,
                        help="fade older events: weight halves every N days (default: no decay)")
    parser.add_argument("--threads", type=int, default=d.threads,
                        help="ALS solver threads (BLAS always gets 1; default 1 leaves the "
                             "other cores to the bot)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON line (for scripts and /retrain)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from indexing.catalog import default_catalog_path
    from training.cf import CFConfig, CFTrainingError, NoFeedbackError, train_from_db

    try:
        config = CFConfig(factors=args.factors, iterations=args.iterations,
                          regularization=args.regularization, alpha=args.alpha,
                          side_weight=args.side_weight, half_life_days=args.half_life_days, threads=args.threads,
                          seed=args.seed)
    except ValueError as exc:
        print(f"moodtune train-cf: {exc}", file=sys.stderr)
        return 2
    if args.since is not None and args.until is not None and args.since >= args.until:
        print("moodtune train-cf: --since must be before --until", file=sys.stderr)
        return 2
    try:
        summary = train_from_db(args.db, args.out, config,
                                catalog_path=args.catalog or default_catalog_path(),
                                since=args.since, until=args.until,
                                progress=not args.no_progress)
    except NoFeedbackError as exc:
        print(f"moodtune train-cf: {exc}; the existing model at {args.out} is unchanged",
              file=sys.stderr)
        return 1
    except CFTrainingError as exc:
        print(f"moodtune train-cf: training failed: {exc}; the existing model at {args.out} is "
              "unchanged", file=sys.stderr)
        return 1
    if summary.get("warning"):
        print(f"moodtune train-cf: warning: {summary['warning']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"CF model {summary['model_id']}: {summary['users']:,} users × "
              f"{summary['songs']:,} songs from {summary['events']:,} events "
              f"({summary['negative_pairs']:,} negative pairs) in {summary['seconds']} s, "
              f"peak RSS {summary['peak_rss_mb']} MB → {summary['out']}\n"
              "the running bot picks it up with /retrain or at its next start")
    return 0
