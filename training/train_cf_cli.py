"""``moodtune train-cf`` — learn each person's taste from their reactions (ALS) and save it.

Reads the bot's database read-only (safe while the bot runs), writes a new CF artifact beside
the old one and renames it into place; the running bot picks it up with ``/retrain`` (which
runs this very command in a worker process) or at its next start. With no feedback in the
window, or on any failure, the previous model is left as it was and the exit status is 1.

Training reads the store through ``bot.store``/``bot.store_pg`` (one owner of the feedback SQL)
but not the bot's settings, so ``DATABASE_PATH``/``DATA_DIR`` are not read here: the defaults
below are the settings' defaults; pass ``--db``/``--out`` when yours differ. ``--db`` takes a SQLite path or a ``postgresql://`` URL; without it,
``$DATABASE_URL`` (the PostgreSQL store's setting) is used when set.

``--engine spark`` trains the same model on Spark MLlib (:mod:`training.cf_spark`, which shows
the ``spark-submit`` for a cluster): the store is exported to a Parquet snapshot first (or
``--snapshot`` names an existing one), then Spark fits ALS; the artifact is the same.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    parser.add_argument("--db", type=str, default=None,
                        help="the bot's store: a SQLite path (DATABASE_PATH) or a postgresql:// "
                             f"URL (default: $DATABASE_URL if set, else {DEFAULT_DB})")
    parser.add_argument("--engine", choices=("implicit", "spark"), default="implicit",
                        help="implicit (one process, default) or spark (Spark MLlib ALS, the "
                             "same weighting and artifact; needs the [spark] extra and Java 17)")
    parser.add_argument("--snapshot", type=Path, default=None,
                        help="spark: train from this Parquet feedback snapshot instead of "
                             "reading the store (with --export-only: where to write it)")
    parser.add_argument("--export-only", action="store_true",
                        help="write the store's feedback to --snapshot as Parquet and stop "
                             "(for spark-submit on a cluster)")
    parser.add_argument("--master", default=None,
                        help="spark: the Spark master (default $SPARK_MASTER or local[2])")
    parser.add_argument("--spark-regularization", type=float, default=None,
                        help="spark: ALS regParam; Spark scales it by each row's positive "
                             "ratings (ALS-WR), so it is not --regularization (default: "
                             "training.cf_spark.DEFAULT_SPARK_REGULARIZATION)")
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


def _train_spark(args: argparse.Namespace, db: str, catalog: Path, config: Any
                 ) -> dict[str, Any] | None:
    """Snapshot the store (unless ``--snapshot``) and train on Spark; None (after printing why)
    when Spark cannot start here."""
    import sys
    import tempfile

    from training.cf import CFTrainingError, read_song_meta
    from training.spark import SparkUnavailableError

    try:
        from training.cf_spark import DEFAULT_SPARK_REGULARIZATION, session_for, train_spark

        spark = session_for(None, args.master)
    except (ImportError, SparkUnavailableError) as exc:
        from training.spark import spark_available

        why = spark_available() or str(exc)
        print(f"moodtune train-cf: --engine spark: {why}", file=sys.stderr)
        return None
    reg = (DEFAULT_SPARK_REGULARIZATION if args.spark_regularization is None
           else args.spark_regularization)
    meta, warning = None, None
    if config.side_weight > 0:
        try:
            meta = read_song_meta(catalog)
        except CFTrainingError as exc:
            warning = f"{exc}; trained without artist/genre sharing"
    progress = not args.no_progress
    with tempfile.TemporaryDirectory(prefix="moodtune-cf-snapshot-") as tmp:
        snapshot, source = args.snapshot, {"snapshot": str(args.snapshot), "catalog": str(catalog)}
        read_s = 0.0
        if snapshot is None:
            from training.feedback_source import describe_source, export_parquet

            if progress:
                print(f"train-cf[spark]: exporting feedback from {describe_source(db)}",
                      file=sys.stderr, flush=True)
            import time

            t0 = time.perf_counter()
            snapshot = Path(tmp) / "feedback.parquet"
            export_parquet(db, snapshot, args.since, args.until)
            read_s = time.perf_counter() - t0
            source = {"database": describe_source(db), "catalog": str(catalog)}
        summary = train_spark(snapshot, args.out, config, song_meta=meta, spark=spark,
                              since=args.since, until=args.until, progress=progress,
                              source=source, spark_regularization=reg)
    summary["read_seconds"] = round(read_s, 2)
    if warning:
        summary["warning"] = warning
    return summary


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    from indexing.catalog import default_catalog_path
    from training.cf import CFConfig, CFTrainingError, NoFeedbackError, train_from_db

    try:
        config = CFConfig(factors=args.factors, iterations=args.iterations,
                          regularization=args.regularization, alpha=args.alpha,
                          side_weight=args.side_weight, half_life_days=args.half_life_days,
                          threads=args.threads, seed=args.seed)
    except ValueError as exc:
        print(f"moodtune train-cf: {exc}", file=sys.stderr)
        return 2
    if args.since is not None and args.until is not None and args.since >= args.until:
        print("moodtune train-cf: --since must be before --until", file=sys.stderr)
        return 2
    db = args.db or os.environ.get("DATABASE_URL") or str(DEFAULT_DB)
    catalog = args.catalog or default_catalog_path()
    try:
        if args.export_only:
            if args.snapshot is None:
                print("moodtune train-cf: --export-only needs --snapshot PATH", file=sys.stderr)
                return 2
            from training.feedback_source import export_parquet

            done = export_parquet(db, args.snapshot, args.since, args.until)
            print(json.dumps(done, ensure_ascii=False) if args.json else
                  f"wrote {done['rows']:,} feedback rows to {done['path']}")
            return 0
        if args.engine == "spark":
            summary = _train_spark(args, db, catalog, config)
            if summary is None:
                return 2
        else:
            summary = train_from_db(db, args.out, config, catalog_path=catalog,
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
