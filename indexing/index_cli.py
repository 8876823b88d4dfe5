"""``moodtune index`` — build the Annoy song index from a catalogue and swap it into place.

The running bot keeps serving the previous index until the new one is complete (the build writes
to a temp dir and renames); send it ``/reindex`` (or restart it) to pick the new one up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from indexing.catalog import Song

DEFAULT_OUT = Path("var/index")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog", type=Path, default=None,
        help="catalogue JSON Lines file (default: the starter catalogue shipped with moodtune)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT,
        help=f"index directory to create or replace (default: {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--n-trees", type=int, default=None,
        help="Annoy trees: more = better recall, bigger file, slower build (default: 10)",
    )
    parser.add_argument(
        "--fingerprint", default=None,
        help="fingerprint of the classifier that produced the song vectors; the server refuses "
        "an index built for another model (default: the catalogue's recorded one, if any)",
    )
    parser.add_argument("--seed", type=int, default=42, help="Annoy random seed (reproducible)")
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="build threads; >1 is faster but not byte-for-byte reproducible (default: 1)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _catalog_fingerprint(songs: Iterable[Song]) -> str | None:
    """The classifier fingerprint recorded on the songs, when they all agree on one.

    The labeller may store it per song in ``extra["model_fingerprint"]``; songs of mixed origin
    (some labelled, some hand-entered) have no single fingerprint, so none is recorded.
    """
    fps = {s.extra.get("model_fingerprint") for s in songs}
    return next(iter(fps)) if len(fps) == 1 else None


def run(args: argparse.Namespace) -> int:
    import time

    from indexing.catalog import Catalog, CatalogError, default_catalog_path
    from indexing.index import DEFAULT_N_TREES, IndexBuildError, build_index

    path = args.catalog or default_catalog_path()
    started = time.perf_counter()
    try:
        catalog = Catalog.load(path)
    except CatalogError as exc:
        print(f"moodtune index: cannot read catalogue: {exc}", file=sys.stderr)
        return 1
    loaded = time.perf_counter() - started
    n_trees = args.n_trees or DEFAULT_N_TREES
    fingerprint = args.fingerprint or _catalog_fingerprint(catalog)
    print(f"catalogue {path}: {len(catalog):,} songs (read in {loaded:.1f} s)")
    try:
        out = build_index(
            catalog,
            args.out,
            n_trees=n_trees,
            model_fingerprint=fingerprint,
            progress=not args.no_progress,
            seed=args.seed,
            n_jobs=args.jobs,
        )
    except IndexBuildError as exc:
        print(f"moodtune index: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nmoodtune index: interrupted; the previous index (if any) is unchanged",
              file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - started
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    ann = (out / "songs.ann").stat().st_size
    print(f"index written to {out}")
    print(f"  songs        {len(catalog):,}")
    print(f"  trees        {n_trees} (seed {args.seed})")
    print(f"  fingerprint  {fingerprint or '(none recorded)'}")
    print(f"  size         {_fmt_bytes(total)} (songs.ann {_fmt_bytes(ann)})")
    print(f"  took         {elapsed:.1f} s")
    moods = catalog.dominant_counts()
    print("  moods        " + ", ".join(f"{k} {v:,}" for k, v in moods.items()))
    empty = [k for k, v in moods.items() if v == 0]
    if empty:
        print(f"  warning: no song leads with {', '.join(empty)}; those moods get weak matches")
    print("reload a running bot with /reindex (or restart it)")
    return 0
