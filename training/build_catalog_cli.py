"""``moodtune build-catalog`` — fuse labelled songs and editorial annotations into the served
catalogue (song profiles, format 2). See ``training.catalog_build`` and ``training.profile``."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labelled", type=Path, required=True,
                        help="output of `moodtune label` (lyrics/description sources)")
    parser.add_argument("--editorial", type=Path, default=None,
                        help="folder of editorial *.jsonl (default: indexing/data/editorial)")
    parser.add_argument("--known", type=Path, default=None,
                        help="known-songs check set whose fit split sets the source weights "
                             "(default: training/data/known_songs.csv)")
    parser.add_argument("--feedback-db", type=Path, default=None,
                        help="the bot's database: songs drift (bounded) toward the moods "
                             "listeners liked them in")
    parser.add_argument("--out", type=Path, default=Path("var/catalog.jsonl"))
    parser.add_argument("--fusion-json", type=Path, default=None,
                        help="also write the fitted fusion (temperatures, weights) here")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from indexing.catalog import Catalog, CatalogError
    from training.catalog_build import (
        build_catalog,
        default_known_songs_path,
        feedback_moods,
        read_editorial,
        read_known_songs,
    )

    try:
        labelled = Catalog.load(args.labelled)
        editorial = read_editorial(args.editorial)
    except (CatalogError, ValueError, OSError) as exc:
        print(f"moodtune build-catalog: {exc}", file=sys.stderr)
        return 1
    known_path = args.known or default_known_songs_path()
    known = read_known_songs(known_path) if known_path.exists() else []
    if not known:
        print(f"moodtune build-catalog: no known-songs set at {known_path}; source weights stay "
              "equal", file=sys.stderr)
    feedback = None
    if args.feedback_db:
        if not args.feedback_db.exists():
            print(f"moodtune build-catalog: no database at {args.feedback_db}", file=sys.stderr)
            return 1
        feedback = feedback_moods(args.feedback_db)
        print(f"feedback: {len(feedback)} songs have reactions that move their mood")
    catalog, fusion, report = build_catalog(labelled, editorial, known, feedback=feedback)
    catalog.save(args.out)
    print(f"{report.songs} songs -> {args.out}")
    print("mood sources: " + ", ".join(f"{k} {v}" for k, v in report.by_sources.most_common()))
    print("fusion: " + json.dumps(fusion.as_dict(), ensure_ascii=False))
    print("leads: " + ", ".join(f"{m} {report.by_mood[m]}" for m in sorted(report.by_mood)))
    for problem in report.balance_problems():
        print(f"balance: {problem}")
    for u in report.editorial_unmatched:
        print(f"warning: annotation does not match its catalogue song: {u}", file=sys.stderr)
    if args.fusion_json:
        args.fusion_json.write_text(json.dumps(fusion.as_dict(), indent=1), encoding="utf-8")
    return 0
