"""Benchmark lyric labelling: songs/s with the shipped model, batched vs one chunk at a time.

    python -m benchmarks.label            # the 640 shared songs: fp32 (what `moodtune label` uses) at 1 and 2 threads, int8 at 2
    python -m benchmarks.label --quick    # the first 160 songs

Every song's lyrics are cut into chunks (``training.label.lyric_chunks``) and classified with
the shipped model. ``label_songs`` (what ``moodtune label`` runs: many songs' chunks per
``predict`` call, length-sorted batches) is compared in the same run with the obvious
alternative, one ``predict`` call per chunk. Nothing is written outside a temp dir; the lyrics
come from ``../shared/data/songs/melon_lyrics.csv`` and are never stored.

Results: table on stdout, JSON in ``benchmarks/results/label.json``.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import write_results

RESULTS = Path(__file__).resolve().parent / "results" / "label.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from inference.classifier import EmotionClassifier
    from training.label import label_songs, lyric_chunks, read_lyrics_csv
    from training.paths import songs_csv

    songs = list(read_lyrics_csv(args.csv or songs_csv()))
    if args.quick:
        songs = songs[:160]
    n_chunks = sum(len(lyric_chunks(s.text)) for s in songs)
    rows = []
    for variant, threads in (("fp32", 1), ("fp32", 2), ("int8", 2)):
        clf = EmotionClassifier.load(variant=variant, threads=threads, batch_size=64)
        with tempfile.TemporaryDirectory() as td:
            t = time.perf_counter()
            rep = label_songs(songs, clf, Path(td) / "c.jsonl", progress=False,
                              log=lambda _: None)
            batched = time.perf_counter() - t
        sample = songs[: max(20, len(songs) // 8)]
        t = time.perf_counter()
        single_chunks = 0
        for s in sample:
            for c in lyric_chunks(s.text):
                clf.predict([c])
                single_chunks += 1
        single = (time.perf_counter() - t) / len(sample) * len(songs)  # extrapolated
        rows.append({
            "threads": threads, "variant": clf.variant, "songs": rep.labelled,
            "chunks": rep.chunks, "seconds": round(batched, 2),
            "songs_per_s": round(rep.labelled / batched, 1),
            "chunks_per_s": round(rep.chunks / batched, 1),
            "one_at_a_time_songs_per_s": round(len(songs) / single, 1),
            "speedup_vs_one_at_a_time": round(single / batched, 2),
        })
    hdr = ("threads", "variant", "songs", "chunks", "seconds", "songs/s", "chunks/s",
           "1-by-1 songs/s", "batched ×")
    print(f"labelling {len(songs)} songs ({n_chunks} chunks) with the shipped model")
    print(" | ".join(hdr))
    for r in rows:
        print(" | ".join(str(r[k]) for k in ("threads", "variant", "songs", "chunks", "seconds",
                                             "songs_per_s", "chunks_per_s",
                                             "one_at_a_time_songs_per_s",
                                             "speedup_vs_one_at_a_time")))
    write_results(args.out, {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "songs": len(songs), "chunks": n_chunks, "rows": rows})
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
