"""``moodtune label`` — label song texts with the classifier: the lyrics part of the profiles.

Inputs can be combined: a crawl database (``moodtune crawl``), lyrics CSVs (``title,artist,
genre,lyrics``) and the project's mood descriptions. Its output is a format-2 catalogue with the
*lyrics* (and *description*) sources only; ``moodtune build-catalog`` fuses it with the
editorial annotations into what the bot serves. The starter catalogue is built with::

    moodtune label --csv ../shared/data/songs/melon_lyrics.csv \\
        --described training/data/described_songs.jsonl --out var/labelled.jsonl
    moodtune build-catalog --labelled var/labelled.jsonl --out indexing/data/catalog.jsonl

At Kakao Arena scale (hundreds of thousands of songs) ``--engine spark`` labels the same inputs,
or a Parquet/CSV lyrics table (``--table``), with one classifier per Spark partition and writes
the same catalogue (``training.label_spark``, which also shows a ``spark-submit`` run)::

    moodtune label --engine spark --partitions 2 --table lyrics.parquet --out var/labelled.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--crawl-db", type=Path, action="append", default=[],
                        help="crawl database written by `moodtune crawl` (repeatable)")
    parser.add_argument("--csv", type=Path, action="append", default=[],
                        help="lyrics CSV with title,artist,lyrics[,genre,album,year,melon_id]")
    parser.add_argument("--described", type=Path, action="append", default=[],
                        help="JSON Lines of songs with a mood description (title,artist,mood_ko)")
    parser.add_argument("--out", type=Path, default=Path("var/catalog.jsonl"),
                        help="catalogue to write (default: var/catalog.jsonl; then "
                             "`moodtune index --catalog` it or set CATALOG_PATH)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="classifier dir (default: the shipped model)")
    parser.add_argument("--variant", choices=["fp32", "int8"], default="fp32",
                        help="graph to label with (default fp32: its vectors do not depend on "
                             "which chunks share a batch; int8 is ~2x faster)")
    parser.add_argument("--threads", type=int, default=None,
                        help="onnxruntime threads (default 2; with --engine spark, per task: 1)")
    parser.add_argument("--max-chars", type=int, default=120,
                        help="characters per lyric chunk (about the model's window)")
    parser.add_argument("--restart", action="store_true",
                        help="ignore the partial output of an interrupted run")
    parser.add_argument("--no-progress", action="store_true")
    spark = parser.add_argument_group("spark engine (training.label_spark)")
    spark.add_argument("--engine", choices=["local", "spark"], default="local",
                       help="local: one process (default); spark: mapInPandas, one classifier "
                            "per partition, for hundreds of thousands of songs")
    spark.add_argument("--table", type=Path, default=None,
                       help="Parquet/CSV lyrics table (title,artist,lyrics[,genre,album,year,"
                            "melon_id]) read by Spark itself; --engine spark only")
    spark.add_argument("--partitions", type=int, default=2,
                       help="Spark partitions = labelling tasks, one classifier each (default 2)")
    spark.add_argument("--master", default=None,
                       help="Spark master (default $SPARK_MASTER or local[2]; ignored under "
                            "spark-submit)")
    spark.add_argument("--ship-model", action="store_true",
                       help="send the model dir to the executors with SparkContext.addFile "
                            "instead of reading it from a path they all see")


def run(args: argparse.Namespace) -> int:
    import itertools
    import sys

    from inference.classifier import EmotionClassifier
    from training.label import label_songs, read_crawl_db, read_described_jsonl, read_lyrics_csv

    engine = getattr(args, "engine", "local")
    table = getattr(args, "table", None)
    if not (args.crawl_db or args.csv or args.described or table):
        print("moodtune label: give at least one of --crawl-db, --csv, --described"
              + (", --table" if engine == "spark" else ""), file=sys.stderr)
        return 2
    if table is not None and engine != "spark":
        print("moodtune label: --table is read by Spark: add --engine spark", file=sys.stderr)
        return 2
    if table is not None and (args.crawl_db or args.csv or args.described):
        print("moodtune label: --table is labelled on its own; label the other inputs in "
              "another run (or convert them to the table)", file=sys.stderr)
        return 2
    for p in [*args.crawl_db, *args.csv, *args.described]:
        if not p.exists():
            print(f"moodtune label: input not found: {p}", file=sys.stderr)
            return 2
    sources = itertools.chain(
        *(read_crawl_db(p) for p in args.crawl_db),
        *(read_lyrics_csv(p) for p in args.csv),
        *(read_described_jsonl(p) for p in args.described),
    )
    if engine == "spark":
        return _run_spark(args, table if table is not None else sources)
    # int8 is dynamically quantised: activation scales are computed per ONNX call, so a chunk's
    # probabilities shift a little with its batch mates (about 4% of argmaxes on the test split
    # vs one call per sentence). A catalogue is built once and kept, so it is labelled with the
    # batch-invariant fp32 graph; the bot serves int8 one message per call.
    clf = EmotionClassifier.load(args.model_dir, variant=args.variant,
                                 threads=args.threads or 2, batch_size=64)
    # Counting a crawl database would read every lyric twice; the files are small.
    total = None if args.crawl_db else sum(
        1 for _ in itertools.chain(*(read_lyrics_csv(p) for p in args.csv),
                                   *(read_described_jsonl(p) for p in args.described)))
    report = label_songs(sources, clf, args.out, max_chars=args.max_chars,
                         resume=not args.restart, progress=not args.no_progress, total=total)
    print(f"model {clf.fingerprint} ({clf.variant}); next: moodtune build-catalog --labelled "
          f"{args.out} --out var/catalog.jsonl")
    return 0 if report.labelled or report.skipped_done else 1


def _run_spark(args: argparse.Namespace, songs: object) -> int:
    """``--engine spark``: the same catalogue, labelled by Spark tasks (training.label_spark)."""
    import sys

    from training.spark import SparkUnavailableError, session

    try:
        spark = session("moodtune-label", master=args.master, partitions=args.partitions)
    except SparkUnavailableError as exc:
        print(f"moodtune label: {exc}", file=sys.stderr)
        return 2
    from training.label_spark import label_spark

    report = label_spark(spark, songs, args.out, model_dir=args.model_dir,
                         variant=args.variant, partitions=args.partitions,
                         max_chars=args.max_chars, threads_per_task=args.threads or 1,
                         resume=not args.restart, progress=not args.no_progress,
                         ship_model=args.ship_model)
    print(f"next: moodtune build-catalog --labelled {args.out} --out var/catalog.jsonl")
    return 0 if report.labelled or report.skipped_done else 1
