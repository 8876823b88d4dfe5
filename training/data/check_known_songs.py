#!/usr/bin/env python3
"""Check the two hand-written song files: the known-songs check set and the catalogue additions.

``training/data/known_songs.csv`` (columns ``song_id,title,artist,moods,split``): every row must
name a song of ``indexing/data/catalog.jsonl`` (id, title and artist as the catalogue has them),
carry 1-2 distinct mood names joined by ``|`` and the split that the hash rule gives
(``fit`` when ``int(sha1(song_id).hexdigest(), 16) % 5 < 2``, else ``report``); no song twice.

``indexing/data/editorial/additions.jsonl`` (one JSON object per line): every field from the
fixed vocabulary of ``indexing.facets`` and ``inference.emotions.LABELS``, numbers in range and on
0.1 steps, and no song that the catalogue already has (``normalise(title) + normalise(artist)``)
or that the file lists twice.

Prints counts per mood / split / genre and exits 1 on any error.

    .venv/bin/python training/data/check_known_songs.py
    .venv/bin/python training/data/check_known_songs.py --min-rows 200 --min-per-mood 15
    .venv/bin/python training/data/check_known_songs.py --skip-additions
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from indexing.catalog import normalise  # noqa: E402
from indexing.facets import GENRES, LANGS, SITUATIONS, TEMPOS, THEMES  # noqa: E402
from inference.emotions import LABELS  # noqa: E402

DEFAULT_CATALOG = ROOT / "indexing" / "data" / "catalog.jsonl"
DEFAULT_KNOWN = ROOT / "training" / "data" / "known_songs.csv"
DEFAULT_ADDITIONS = ROOT / "indexing" / "data" / "editorial" / "additions.jsonl"

KNOWN_HEADER = ["song_id", "title", "artist", "moods", "split"]
ADDITION_KEYS = [
    "title", "artist", "mood", "also", "energy", "tempo", "dance", "situations", "themes",
    "genre", "year", "album", "lang", "confidence",
]
SPLITS = ("fit", "report")


def split_for(song_id: str) -> str:
    """The deterministic split of a check-set song: ≈40 % fit, ≈60 % report."""
    return "fit" if int(hashlib.sha1(song_id.encode("utf-8")).hexdigest(), 16) % 5 < 2 else "report"


def song_key(title: str, artist: str) -> str:
    return normalise(title) + "\x1f" + normalise(artist)


def load_catalog(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _on_step(x: float) -> bool:
    return abs(round(x * 10) - x * 10) < 1e-6


def check_known(path: Path, catalog: list[dict], min_rows: int, min_per_mood: int) -> list[str]:
    errors: list[str] = []
    by_id = {s["song_id"]: s for s in catalog}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        rows = list(reader)
    if header != KNOWN_HEADER:
        return [f"{path.name}: header {header!r}, expected {KNOWN_HEADER!r}"]
    seen: set[str] = set()
    first = Counter()
    any_mood = Counter()
    by_split = Counter()
    by_first_split = Counter()
    genres = Counter()
    for n, row in enumerate(rows, start=2):
        where = f"{path.name}:{n}"
        if len(row) != len(KNOWN_HEADER):
            errors.append(f"{where}: {len(row)} columns")
            continue
        song_id, title, artist, moods, split = row
        song = by_id.get(song_id)
        if song is None:
            errors.append(f"{where}: {song_id} is not in the catalogue")
            continue
        if (title, artist) != (song["title"], song["artist"]):
            errors.append(f"{where}: title/artist {title!r}/{artist!r} != catalogue "
                          f"{song['title']!r}/{song['artist']!r}")
        if song_id in seen:
            errors.append(f"{where}: {song_id} listed twice")
        seen.add(song_id)
        names = moods.split("|")
        if not 1 <= len(names) <= 2 or len(set(names)) != len(names):
            errors.append(f"{where}: moods {moods!r} must be 1-2 distinct names")
        bad = [m for m in names if m not in LABELS]
        if bad:
            errors.append(f"{where}: unknown mood(s) {bad}")
            continue
        if split != split_for(song_id):
            errors.append(f"{where}: split {split!r}, the hash rule gives {split_for(song_id)!r}")
        first[names[0]] += 1
        any_mood.update(names)
        by_split[split] += 1
        by_first_split[(names[0], split)] += 1
        genres[song.get("genre") or "-"] += 1
    if len(rows) < min_rows:
        errors.append(f"{path.name}: {len(rows)} rows, need at least {min_rows}")
    for m in LABELS:
        if m != "슬픔" and first[m] < min_per_mood:
            errors.append(f"{path.name}: only {first[m]} songs with first mood {m} "
                          f"(need {min_per_mood})")
    print(f"{path.name}: {len(rows)} rows; split {dict(by_split)}")
    print("  first mood (fit/report): " + ", ".join(
        f"{m} {first[m]} ({by_first_split[(m, 'fit')]}/{by_first_split[(m, 'report')]})"
        for m in LABELS))
    print("  any mood: " + ", ".join(f"{m} {any_mood[m]}" for m in LABELS))
    print("  catalogue genres: " + ", ".join(f"{g} {c}" for g, c in genres.most_common()))
    return errors


def check_additions(path: Path, catalog: list[dict]) -> list[str]:
    errors: list[str] = []
    in_catalog = {song_key(s["title"], s["artist"]) for s in catalog}
    seen: dict[str, int] = {}
    moods = Counter()
    genres = Counter()
    langs = Counter()
    with path.open(encoding="utf-8") as fh:
        lines = fh.readlines()
    rows = 0
    for n, line in enumerate(lines, start=1):
        where = f"{path.name}:{n}"
        if not line.strip():
            continue
        rows += 1
        try:
            d = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{where}: bad JSON ({exc})")
            continue
        if list(d) != ADDITION_KEYS:
            errors.append(f"{where}: keys {list(d)} != {ADDITION_KEYS}")
            continue
        title, artist = d["title"], d["artist"]
        if not (isinstance(title, str) and title.strip() and isinstance(artist, str) and artist.strip()):
            errors.append(f"{where}: empty title or artist")
            continue
        key = song_key(title, artist)
        if key in in_catalog:
            errors.append(f"{where}: {title} / {artist} is already in the catalogue")
        if key in seen:
            errors.append(f"{where}: {title} / {artist} duplicates line {seen[key]}")
        seen.setdefault(key, n)
        if d["mood"] not in LABELS:
            errors.append(f"{where}: mood {d['mood']!r}")
        also = d["also"]
        if (not isinstance(also, list) or len(also) > 2 or len(set(also)) != len(also)
                or any(m not in LABELS or m == d["mood"] for m in also)):
            errors.append(f"{where}: also {also!r} must be 0-2 other mood names")
        for k in ("energy", "dance"):
            x = d[k]
            if not isinstance(x, (int, float)) or not 0.0 <= x <= 1.0 or not _on_step(x):
                errors.append(f"{where}: {k} {x!r} must be 0.0-1.0 in steps of 0.1")
        if d["tempo"] not in TEMPOS:
            errors.append(f"{where}: tempo {d['tempo']!r}")
        sits = d["situations"]
        if (not isinstance(sits, list) or len(sits) > 4 or len(set(sits)) != len(sits)
                or any(s not in SITUATIONS for s in sits)):
            errors.append(f"{where}: situations {sits!r} must be 0-4 of SITUATIONS")
        themes = d["themes"]
        if (not isinstance(themes, list) or not 1 <= len(themes) <= 3
                or len(set(themes)) != len(themes) or any(t not in THEMES for t in themes)):
            errors.append(f"{where}: themes {themes!r} must be 1-3 of THEMES")
        if d["genre"] not in GENRES:
            errors.append(f"{where}: genre {d['genre']!r}")
        year = d["year"]
        if year is not None and (not isinstance(year, int) or not 1940 <= year <= 2026):
            errors.append(f"{where}: year {year!r}")
        if d["album"] is not None and not (isinstance(d["album"], str) and d["album"].strip()):
            errors.append(f"{where}: album must be a name or null")
        if d["lang"] not in LANGS:
            errors.append(f"{where}: lang {d['lang']!r}")
        conf = d["confidence"]
        if not isinstance(conf, (int, float)) or not 0.5 <= conf <= 1.0:
            errors.append(f"{where}: confidence {conf!r} must be 0.5-1.0")
        moods[d["mood"]] += 1
        genres[d["genre"]] += 1
        langs[d["lang"]] += 1
    print(f"{path.name}: {rows} songs; catalogue + additions = {len(catalog) + rows}")
    print("  mood: " + ", ".join(f"{m} {moods[m]}" for m in LABELS))
    print("  genre: " + ", ".join(f"{g} {c}" for g, c in genres.most_common()))
    print("  lang: " + ", ".join(f"{g} {c}" for g, c in langs.most_common()))
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    ap.add_argument("--known", type=Path, default=DEFAULT_KNOWN)
    ap.add_argument("--additions", type=Path, default=DEFAULT_ADDITIONS)
    ap.add_argument("--min-rows", type=int, default=200, help="check-set rows required")
    ap.add_argument("--min-per-mood", type=int, default=15,
                    help="check-set songs required per first mood (all but 슬픔)")
    ap.add_argument("--skip-known", action="store_true")
    ap.add_argument("--skip-additions", action="store_true")
    args = ap.parse_args(argv)

    catalog = load_catalog(args.catalog)
    errors: list[str] = []
    if not args.skip_known:
        errors += check_known(args.known, catalog, args.min_rows, args.min_per_mood)
    if not args.skip_additions:
        errors += check_additions(args.additions, catalog)
    for e in errors[:200]:
        print("ERROR", e, file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
