"""Does the catalogue know its songs? Mood accuracy per source on the public known-songs set,
facet coverage, mood/genre balance, lyric themes vs editorial, and exposure across users.

    python -m benchmarks.songs [--catalog indexing/data/catalog.jsonl] [--before REV]

* **Mood accuracy** on ``training/data/known_songs.csv`` (the moods a listener accepts): each
  source alone (the lyric vector, the description vector, the editorial annotation — scored on
  the songs that source covers) and the fused vector the bot serves, on the *fit* split (used to
  set the source weights) and the *report* split (never used to fit anything). "before" is the
  catalogue as shipped at git revision ``--before`` (default: the last one before song
  profiles), when git can show it.
* **Facets**: share of songs with each field known, by source.
* **Balance**: songs per leading mood and per genre.
* **Lyric themes vs editorial themes**: precision/recall of the lexicon on songs that have both.
* **Exposure**: 1,000 simulated users, three requests each, ranked exactly as the engine ranks
  (cosine candidates → MMR re-rank with the artist cap, no repeats per user); query moods are
  the classifier's reads of the public probe and chat sentences, jittered per user. Reported:
  Gini of per-song exposure, the share of the most-served 1 % of songs, songs never served.

Results: tables on stdout, JSON in ``benchmarks/results/songs.json``.
"""

from __future__ import annotations

import argparse
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks import machine, write_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "songs.json"
BEFORE = "b790f00"  # main before issue 11 (the 811-song lyric/description catalogue)


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = everyone served equally, 1 = one song)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)


def _load_before(rev: str):
    from indexing.catalog import Catalog

    try:
        text = subprocess.run(["git", "show", f"{rev}:indexing/data/catalog.jsonl"], cwd=ROOT,
                              capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    tmp = ROOT / "benchmarks" / "results" / ".before_catalog.jsonl"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text, encoding="utf-8")
    try:
        return Catalog.load(tmp)
    finally:
        tmp.unlink(missing_ok=True)


def accuracy(catalog, known) -> dict:
    """Accuracy of each source's top mood among the accepted moods, per split."""
    from inference.emotions import LABELS

    out: dict = {}
    for split in ("fit", "report"):
        rows: dict[str, list[bool]] = {"fused": [], "lyrics": [], "description": [],
                                       "editorial": []}
        missing = 0
        for k in known:
            if k.split != split:
                continue
            song = catalog.get(k.song_id)
            if song is None:
                missing += 1
                continue
            rows["fused"].append(LABELS[int(np.argmax(song.vector))] in k.moods)
            for name, vec in (song.moods or {}).items():
                rows[name].append(LABELS[int(np.argmax(vec))] in k.moods)
        out[split] = {name: {"n": len(v), "accuracy": round(float(np.mean(v)), 4) if v else None}
                      for name, v in rows.items()}
        out[split]["missing"] = missing
    return out


def facet_coverage(catalog) -> dict:
    from indexing.catalog_cli import FACET_FIELDS, _known

    n = len(catalog)
    cov = {}
    for name in FACET_FIELDS:
        known = [s for s in catalog if _known(s, name)]
        by_src = Counter((s.provenance.get(name) or {}).get("source", "unrecorded") for s in known)
        cov[name] = {"known": round(len(known) / n, 4),
                     "by_source": {k: round(v / n, 4) for k, v in by_src.most_common()}}
    return cov


def balance(catalog) -> dict:
    from inference.emotions import LABELS

    moods = Counter(LABELS[int(np.argmax(s.vector))] for s in catalog)
    genres = Counter(s.genre or "(unknown)" for s in catalog)
    return {"songs": len(catalog), "moods": {m: moods[m] for m in LABELS},
            "max_mood_share": round(max(moods.values()) / len(catalog), 4),
            "genres": dict(genres.most_common())}


def themes_vs_editorial(catalog) -> dict:
    """Lexicon themes (from lyrics, kept in the labelled file's provenance) vs the editor's."""
    from training.profile import THEME_STEMS

    labelled = ROOT / "var" / "labelled.jsonl"
    if not labelled.exists():
        return {"note": "run `moodtune label … --out var/labelled.jsonl` first"}
    from indexing.catalog import Catalog

    lyric = {s.song_id: set(s.themes) for s in Catalog.load(labelled) if s.source == "lyrics"}
    per: dict[str, list[int]] = {t: [0, 0, 0] for t in THEME_STEMS}  # tp, fp, fn
    songs = 0
    for s in catalog:
        if s.song_id not in lyric or (s.provenance.get("themes") or {}).get("source") != \
                "editorial":
            continue
        songs += 1
        got, want = lyric[s.song_id], set(s.themes)
        for t in per:
            per[t][0] += t in got and t in want
            per[t][1] += t in got and t not in want
            per[t][2] += t not in got and t in want
    tp, fp, fn = (sum(v[i] for v in per.values()) for i in range(3))
    return {"songs": songs, "precision": round(tp / max(tp + fp, 1), 3),
            "recall": round(tp / max(tp + fn, 1), 3),
            "per_theme": {t: {"precision": round(v[0] / max(v[0] + v[1], 1), 3),
                              "recall": round(v[0] / max(v[0] + v[2], 1), 3), "support": v[0] + v[2]}
                          for t, v in per.items() if v[0] + v[2]}}


def _queries(seed: int) -> np.ndarray:
    """Mood vectors of realistic messages: the classifier's reads of the public probe sets."""
    import csv

    from inference.classifier import EmotionClassifier

    texts = []
    for name in ("probe_ko.csv", "music_ko.csv", "neutral_ko.csv"):
        with (ROOT / "training" / "data" / name).open(encoding="utf-8") as fh:
            texts += [r["sentence"] for r in csv.DictReader(fh) if r.get("sentence")]
    clf = EmotionClassifier.load(variant="fp32", threads=2)
    return clf.predict(texts[:600])


def exposure(catalog, queries: np.ndarray, *, users: int = 1000, requests: int = 3,
             seed: int = 0, exploration: float = 0.0) -> dict:
    from bot.ranking import RankWeights, rerank
    from indexing.index import ExactSearch

    rng = np.random.default_rng(seed)
    search = ExactSearch.from_catalog(catalog)
    counts = np.zeros(len(catalog))
    pos = {s.song_id: i for i, s in enumerate(catalog)}
    weights = RankWeights(exploration=exploration)
    fit: list[float] = []
    for _ in range(users):
        seen: set[str] = set()
        for _ in range(requests):
            q = queries[rng.integers(len(queries))] + rng.normal(0, 0.03, 6).clip(-0.02, None)
            q = np.clip(q, 1e-4, None)
            cands = search.search(q, 60, exclude=seen)
            for r in rerank(q, cands, 5, weights, rng=rng):
                counts[pos[r.song.song_id]] += 1
                seen.add(r.song.song_id)
                fit.append(r.mood)
    top = np.sort(counts)[::-1]
    k = max(1, len(top) // 100)
    return {"gini": round(gini(counts), 4), "top1pct_share": round(float(top[:k].sum() /
                                                                          top.sum()), 4),
            "never_served": int((counts == 0).sum()), "max_per_song": int(top[0]),
            "served": int(top.sum()), "mean_mood_cosine": round(float(np.mean(fit)), 4),
            "exploration": exploration}


def main(argv: list[str] | None = None) -> int:
    from indexing.catalog import Catalog, default_catalog_path
    from training.catalog_build import read_known_songs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", type=Path, default=None)
    ap.add_argument("--before", default=BEFORE, help="git revision of the 'before' catalogue")
    ap.add_argument("--quick", action="store_true", help="300 simulated users instead of 1,000")
    args = ap.parse_args(argv)
    catalog = Catalog.load(args.catalog or default_catalog_path())
    known = read_known_songs()
    before = _load_before(args.before)
    users = 300 if args.quick else 1000
    result: dict = {"machine": machine(), "catalog": str(args.catalog or "shipped"),
                    "known_songs": len(known)}
    result["accuracy"] = accuracy(catalog, known)
    if before is not None:
        result["accuracy_before"] = accuracy(before, known)
    result["facets"] = facet_coverage(catalog)
    result["balance"] = balance(catalog)
    if before is not None:
        result["balance_before"] = balance(before)
    result["themes_vs_editorial"] = themes_vs_editorial(catalog)
    from bot.settings import Settings

    queries = _queries(0)
    explore = Settings.model_fields["rank_exploration"].default
    result["exposure"] = exposure(catalog, queries, users=users, exploration=explore)
    result["exposure_deterministic"] = exposure(catalog, queries, users=users)
    if before is not None:
        result["exposure_before"] = exposure(before, queries, users=users)

    print(f"\nMood accuracy on the known-songs set ({len(known)} songs; top mood among the "
          "moods a listener accepts)")
    print(f"{'source':<22}{'fit n':>7}{'fit acc':>9}{'report n':>10}{'report acc':>12}")

    def row(name: str, acc: dict, label: str) -> None:
        f, r = acc["fit"][name], acc["report"][name]
        fa = f"{f['accuracy']:.3f}" if f["accuracy"] is not None else "—"
        ra = f"{r['accuracy']:.3f}" if r["accuracy"] is not None else "—"
        print(f"{label:<22}{f['n']:>7}{fa:>9}{r['n']:>10}{ra:>12}")

    if before is not None:
        row("fused", {s: {"fused": v["fused"]} for s, v in result["accuracy_before"].items()
                      if s in ("fit", "report")}, f"before ({args.before})")
    for name in ("lyrics", "description", "editorial", "fused"):
        row(name, result["accuracy"], name if name != "fused" else "fused (served)")
    b = result["balance"]
    print(f"\nBalance: {b['songs']} songs; leading mood " + ", ".join(
        f"{m} {c}" for m, c in b["moods"].items()) + f"; largest share {b['max_mood_share']:.0%}")
    print("genres: " + ", ".join(f"{g} {c}" for g, c in list(b["genres"].items())[:14]))
    print("\nFacet coverage (share of songs known, by source)")
    for name, c in result["facets"].items():
        srcs = ", ".join(f"{k} {v:.0%}" for k, v in c["by_source"].items())
        print(f"  {name:<11}{c['known']:>6.0%}  {srcs}")
    t = result["themes_vs_editorial"]
    if "songs" in t:
        print(f"\nLyric themes (lexicon) vs editorial themes on {t['songs']} songs: precision "
              f"{t['precision']:.2f}, recall {t['recall']:.2f}")
    print(f"\nExposure across {users} simulated users × 3 requests (5 tracks each)")
    print(f"{'catalogue / ranking':<30}{'Gini':>7}{'top 1% share':>14}{'never served':>14}"
          f"{'max/song':>10}{'mood cos':>10}")
    rows = [("after, deterministic", result["exposure_deterministic"]),
            (f"after, exploration {explore}", result["exposure"])]
    if before is not None:
        rows.insert(0, (f"before ({args.before})", result["exposure_before"]))
    for label, e in rows:
        print(f"{label:<30}{e['gini']:>7.3f}{e['top1pct_share']:>14.1%}{e['never_served']:>14}"
              f"{e['max_per_song']:>10}{e['mean_mood_cosine']:>10.3f}")
    write_results(RESULTS, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
