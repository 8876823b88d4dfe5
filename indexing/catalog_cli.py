"""``moodtune catalog stats`` — what is in a catalogue, and is it fit to index?

Mood coverage matters because a mood with few songs gets poor matches whatever the index does;
duplicates (the same title and artist under two ids, typical after merging crawls) make the bot
recommend one track twice in a reply. The command exits non-zero when it finds duplicates so it
can gate a pipeline (``moodtune catalog stats && moodtune index``).
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from indexing.catalog import normalise

if TYPE_CHECKING:
    from indexing.catalog import Song

#: Profile fields whose coverage and sources ``stats`` reports.
FACET_FIELDS = ("vector", "genre", "year", "album", "lang", "energy", "dance", "tempo",
                "situations", "themes")


def _known(song: Song, name: str) -> bool:
    value = getattr(song, name)
    return value not in (None, (), "")


def find_duplicates(songs: Iterable[Song]) -> list[list[Song]]:
    """Groups of two or more songs with the same normalised (title, artist), in catalogue order."""
    groups: dict[tuple[str, str], list[Song]] = defaultdict(list)
    for s in songs:
        groups[(normalise(s.title), normalise(s.artist))].append(s)
    return [g for g in groups.values() if len(g) > 1]


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    stats = sub.add_parser("stats", help="counts, mood distribution, genres, sources, duplicates")
    stats.add_argument(
        "--catalog", type=Path, default=None,
        help="catalogue JSON Lines file (default: the starter catalogue shipped with moodtune)",
    )
    stats.add_argument("--top", type=int, default=10, help="genres to list (default: 10)")
    stats.add_argument("--show", type=int, default=10, help="duplicate groups to print")


def _pad(text: str, width: int) -> str:
    """Left-justify by terminal cell width: Hangul takes two cells, so str.ljust misaligns."""
    cells = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - cells)


def _bar(frac: float, width: int = 24) -> str:
    n = round(frac * width)
    return "█" * n + "·" * (width - n)


def run(args: argparse.Namespace) -> int:
    from indexing.catalog import Catalog, CatalogError, default_catalog_path
    from inference.emotions import EMOTIONS

    if args.action != "stats":  # pragma: no cover - argparse enforces the choice
        print(f"moodtune catalog: unknown action {args.action!r}", file=sys.stderr)
        return 2
    path = args.catalog or default_catalog_path()
    try:
        catalog = Catalog.load(path)
    except CatalogError as exc:
        print(f"moodtune catalog: {exc}", file=sys.stderr)
        return 1
    n = len(catalog)
    print(f"catalogue  {path}")
    print(f"songs      {n:,}")
    if n == 0:
        print("the catalogue is empty: nothing to index")
        return 1

    print("\nmood distribution (songs whose strongest emotion is …)")
    counts = catalog.dominant_counts()
    for e in EMOTIONS:
        c = counts[e.ko]
        print(f"  {e.emoji} {e.ko} {e.en:<8} {c:>9,}  {c / n:6.1%}  {_bar(c / n)}")
    empty = [k for k, v in counts.items() if v == 0]
    if empty:
        print(f"  warning: no song leads with {', '.join(empty)}")

    genres = Counter(s.genre or "(none)" for s in catalog)
    print(f"\ngenres (top {min(args.top, len(genres))} of {len(genres)})")
    for g, c in genres.most_common(args.top):
        print(f"  {_pad(g, 16)} {c:>9,}  {c / n:6.1%}")

    print("\nsources")
    for src, c in Counter(s.source for s in catalog).most_common():
        print(f"  {_pad(src, 16)} {c:>9,}  {c / n:6.1%}")

    profiled = [s for s in catalog if s.has_profile]
    if profiled:
        print(f"\nsong profiles (format 2): {len(profiled):,} songs ({len(profiled) / n:.0%})")
        print(f"  {_pad('field', 12)} {'known':>7}  by source")
        for name in FACET_FIELDS:
            known = [s for s in catalog if _known(s, name)]
            by_src = Counter((s.provenance.get(name) or {}).get("source", "?") for s in known)
            srcs = ", ".join(f"{k} {v / n:.0%}" for k, v in by_src.most_common())
            print(f"  {_pad(name, 12)} {len(known) / n:>6.0%}  {srcs}")
        for name, counter in (("situations", Counter(x for s in catalog for x in s.situations)),
                              ("themes", Counter(x for s in catalog for x in s.themes))):
            top = ", ".join(f"{k} {v}" for k, v in counter.most_common(8))
            print(f"  top {name}: {top}")
        energies = [s.energy for s in catalog if s.energy is not None]
        if energies:
            hi = sum(e >= 0.65 for e in energies)
            lo = sum(e <= 0.35 for e in energies)
            print(f"  energy: {lo:,} low · {len(energies) - hi - lo:,} mid · {hi:,} high")

    years = [s.year for s in catalog if s.year]
    if years:
        print(f"\nyears      {min(years)}–{max(years)} ({len(years) / n:.0%} known)")
    with_melon = sum(1 for s in catalog if s.melon_id)
    print(f"melon ids  {with_melon:,} ({with_melon / n:.0%})")
    print(f"artists    {len({normalise(s.artist) for s in catalog}):,}")

    dups = find_duplicates(catalog)
    if not dups:
        print("\nduplicates none (normalised title + artist)")
        return 0
    extra = sum(len(g) - 1 for g in dups)
    print(f"\nduplicates {len(dups):,} groups, {extra:,} redundant songs (normalised title + artist)")
    for g in dups[: args.show]:
        ids = ", ".join(s.song_id for s in g)
        print(f"  {g[0].artist} — {g[0].title}: {ids}")
    if len(dups) > args.show:
        print(f"  … and {len(dups) - args.show:,} more groups")
    print("merge or drop them before indexing, or the bot may recommend one track twice")
    return 1
