"""Validate the editorial song annotations (``starter.jsonl``) against the catalogue and vocabulary.

Usage: ``python indexing/data/editorial/check_editorial.py [--counts] [--file starter2.jsonl]``.
Exits non-zero on any problem; ``--counts`` prints per-mood / per-genre / year / album counts (for
the README). ``--file NAME`` checks another file in this folder (the second pass,
``starter2.jsonl``) the same way, and also that none of its ids is already in ``starter.jsonl``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from indexing.facets import GENRES, LANGS, SITUATIONS, TEMPOS, THEMES  # noqa: E402

MOODS = ("분노", "긴장", "슬픔", "평화", "기쁨", "중립")
FIELDS = {
    "song_id", "title", "artist", "mood", "also", "energy", "tempo", "dance", "situations",
    "themes", "genre", "year", "album", "lang", "confidence",
}


def _step(x: object, lo: float, hi: float, step: float = 0.1) -> bool:
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not lo <= x <= hi:
        return False
    return abs(x / step - round(x / step)) < 1e-6


def check(path: Path, catalog: Path) -> tuple[list[str], list[dict]]:
    cat = {}
    for line in catalog.open(encoding="utf-8"):
        r = json.loads(line)
        cat[r["song_id"]] = r
    errors: list[str] = []
    rows: list[dict] = []
    seen: set[str] = set()
    for n, line in enumerate(path.open(encoding="utf-8"), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"{where}: bad JSON ({e})")
            continue
        if set(r) != FIELDS:
            errors.append(f"{where}: fields {sorted(set(r) ^ FIELDS)} missing/extra")
            continue
        sid = r["song_id"]
        c = cat.get(sid)
        if c is None:
            errors.append(f"{where}: {sid} not in catalogue")
        elif (c["title"], c["artist"]) != (r["title"], r["artist"]):
            errors.append(f"{where}: {sid} title/artist differ from catalogue")
        if sid in seen:
            errors.append(f"{where}: duplicate {sid}")
        seen.add(sid)
        if r["mood"] not in MOODS:
            errors.append(f"{where}: mood {r['mood']!r}")
        also = r["also"]
        if not isinstance(also, list) or len(also) > 2 or any(a not in MOODS for a in also) \
                or r["mood"] in also or len(set(also)) != len(also):
            errors.append(f"{where}: also {also!r}")
        for k in ("energy", "dance"):
            if not _step(r[k], 0.0, 1.0):
                errors.append(f"{where}: {k} {r[k]!r}")
        if r["tempo"] not in TEMPOS:
            errors.append(f"{where}: tempo {r['tempo']!r}")
        s = r["situations"]
        if not isinstance(s, list) or len(s) > 4 or any(x not in SITUATIONS for x in s) \
                or len(set(s)) != len(s):
            errors.append(f"{where}: situations {s!r}")
        t = r["themes"]
        if not isinstance(t, list) or not 1 <= len(t) <= 3 or any(x not in THEMES for x in t) \
                or len(set(t)) != len(t):
            errors.append(f"{where}: themes {t!r}")
        if r["genre"] not in GENRES:
            errors.append(f"{where}: genre {r['genre']!r}")
        y = r["year"]
        if y is not None and (not isinstance(y, int) or not 1950 <= y <= 2026):
            errors.append(f"{where}: year {y!r}")
        a = r["album"]
        if a is not None and (not isinstance(a, str) or not a.strip()):
            errors.append(f"{where}: album {a!r}")
        if r["lang"] not in LANGS:
            errors.append(f"{where}: lang {r['lang']!r}")
        if not _step(r["confidence"], 0.5, 1.0, 0.05):
            errors.append(f"{where}: confidence {r['confidence']!r}")
        rows.append(r)
    return errors, rows


def main(argv: list[str]) -> int:
    name = argv[argv.index("--file") + 1] if "--file" in argv else "starter.jsonl"
    path = HERE / name
    errors, rows = check(path, ROOT / "indexing" / "data" / "catalog.jsonl")
    if path.name != "starter.jsonl":
        first = {json.loads(x)["song_id"] for x in (HERE / "starter.jsonl").open(encoding="utf-8")
                 if x.strip()}
        errors += [f"{path.name}: {r['song_id']} already in starter.jsonl" for r in rows
                   if r["song_id"] in first]
    for e in errors:
        print(e)
    print(f"{len(rows)} annotations, {len(errors)} problems")
    if "--counts" in argv:
        print("mood:", dict(Counter(r["mood"] for r in rows).most_common()))
        print("genre:", dict(Counter(r["genre"] for r in rows).most_common()))
        print("lang:", dict(Counter(r["lang"] for r in rows).most_common()))
        print("tempo:", dict(Counter(r["tempo"] for r in rows).most_common()))
        print("with year:", sum(r["year"] is not None for r in rows))
        print("with album:", sum(r["album"] is not None for r in rows))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
