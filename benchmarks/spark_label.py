"""Benchmark ``moodtune label --engine spark`` against the local labeller, and project 700k songs.

    python -m benchmarks.spark_label            # the 640 shared songs: local, Spark at 1 and 2 partitions
    python -m benchmarks.spark_label --quick    # 120 songs
    python -m benchmarks.spark_label --songs 2000   # the shared songs repeated under distinct ids

Why: the Spark engine exists for Kakao Arena scale (hundreds of thousands of songs), which this
2-core box cannot run; what it can measure are the parameters of a simple cost model:

    T(N) = t_fixed + songs / (N · r_1 · e)

* ``t_fixed`` — what a labelling run costs regardless of size: Spark jobs for the table read and
  the dedup, Python worker start, one classifier load per partition, the driver's merge. Measured
  as a run over a handful of songs on a warm session (the session's own start-up is reported
  apart: a cluster pays it once per job, before any of this).
* ``r_1`` — songs/s of one partition (one task, one ONNX session, ``threads_per_task=1``), from the
  1-partition run minus ``t_fixed``.
* ``e`` — parallel efficiency, ``r_2 / (2 · r_1)`` from the 2-partition run on this box's 2 cores.

The projection assumes: one executor core runs one task (N executors × 1 core = N concurrent
partitions), every partition loads the model once (inside ``t_fixed``), the songs spread evenly,
there is no shuffle of lyrics (only the small dedup keys move), and ``e`` measured on 2 local cores
holds at N (for N = 1, e = 1). It ignores stragglers, executor start-up on a cluster, and the
driver's merge growing with the catalogue (measured apart by ``merge_memory``: streamed, its
memory stays flat; loading every song would need gigabytes at 700k).

Results: table on stdout, JSON in ``benchmarks/results/spark_label.json``. The lyrics come from
``../shared/data/songs/melon_lyrics.csv`` (a temporary Parquet copy for Spark) and are never
stored. ``measure`` has no side effects beyond temp dirs and a Spark session, so
``benchmarks.scale`` can call it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import machine, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "spark_label.json"
PROJECT_SONGS = 700_000
PROJECT_EXECUTORS = (1, 2, 8, 32)


def _songs(n: int, csv: Path | None = None) -> list[Any]:
    """``n`` songs from the shared lyrics, repeated under distinct titles (so distinct ids and
    no dedup) when more are asked for than the file has."""
    from dataclasses import replace

    from training.label import read_lyrics_csv, song_id_for
    from training.paths import songs_csv

    base = list(read_lyrics_csv(csv or songs_csv()))
    out = []
    for i in range(n):
        st = base[i % len(base)]
        k = i // len(base)
        if k:
            title = f"{st.title} #{k}"
            st = replace(st, title=title, song_id=song_id_for(title, st.artist), melon_id=None)
        out.append(st)
    return out


def _table(songs: list[Any], path: Path) -> Path:
    import pandas as pd

    pd.DataFrame({"title": [s.title for s in songs], "artist": [s.artist for s in songs],
                  "genre": [s.genre or "" for s in songs],
                  "lyrics": [s.text for s in songs]}).to_parquet(path, index=False)
    return path


def project(t_fixed: float, r_1: float, e: float, songs: int = PROJECT_SONGS,
            executors: tuple[int, ...] = PROJECT_EXECUTORS) -> dict[int, float]:
    """Seconds the model predicts for ``songs`` on each executor count (see the module doc)."""
    return {n: t_fixed + songs / (n * r_1 * (1.0 if n == 1 else e)) for n in executors}


def measure(n_songs: int = 640, partitions: tuple[int, ...] = (1, 2), quick: bool = False,
            csv: Path | None = None) -> dict[str, Any]:
    """Songs/s of the local labeller and of Spark at each partition count on the same songs,
    Spark's fixed cost, and the fitted 700k projection (a dict; nothing is written)."""
    from inference.classifier import EmotionClassifier
    from training.label import label_songs
    from training.label_spark import label_spark
    from training.spark import session

    if quick:
        n_songs = min(n_songs, 120)
    songs = _songs(n_songs, csv)
    quiet = {"progress": False, "log": lambda _: None}
    result: dict[str, Any] = {"songs": len(songs), "rows": []}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for threads in (1, 2):
            clf = EmotionClassifier.load(variant="fp32", threads=threads, batch_size=64)
            t = time.perf_counter()
            rep = label_songs(songs, clf, tmp / f"local{threads}.jsonl", resume=False, **quiet)
            sec = time.perf_counter() - t
            result["rows"].append({"engine": "local", "threads": threads, "partitions": None,
                                   "songs": rep.labelled, "chunks": rep.chunks,
                                   "seconds": round(sec, 2),
                                   "songs_per_s": round(rep.labelled / sec, 1)})

        from pyspark.sql import SparkSession

        warm = SparkSession.getActiveSession() is not None
        t = time.perf_counter()
        spark = session("moodtune-bench-label", master=os.environ.get("SPARK_MASTER", "local[2]"))
        result["spark_start_s"] = None if warm else round(time.perf_counter() - t, 2)
        lyrics = _table(songs, tmp / "lyrics.parquet")
        tiny = _table(songs[:4], tmp / "tiny.parquet")
        t = time.perf_counter()  # the first run pays JIT, worker start and imports
        label_spark(spark, tiny, tmp / "warm.jsonl", partitions=1, resume=False, **quiet)
        result["spark_first_run_s"] = round(time.perf_counter() - t, 2)
        fixed = []
        for _ in range(2):
            t = time.perf_counter()
            label_spark(spark, tiny, tmp / "tiny.jsonl", partitions=1, resume=False, **quiet)
            fixed.append(time.perf_counter() - t)
        t_fixed = min(fixed)
        result["t_fixed_s"] = round(t_fixed, 2)
        rates = {}
        for p in partitions:
            t = time.perf_counter()
            rep = label_spark(spark, lyrics, tmp / f"spark{p}.jsonl", partitions=p,
                              resume=False, **quiet)
            sec = time.perf_counter() - t
            rates[p] = rep.labelled / max(sec - t_fixed, 1e-9)
            result["rows"].append({
                "engine": "spark", "threads": 1, "partitions": p, "songs": rep.labelled,
                "chunks": rep.chunks, "seconds": round(sec, 2),
                "songs_per_s": round(rep.labelled / sec, 1),
                "songs_per_s_minus_fixed": round(rates[p], 1),
                "classifier_loads": sum(s["loads"] for s in rep.partitions)})
    r_1 = rates.get(1) or next(iter(rates.values()))
    p_max = max(rates)
    e = rates[p_max] / (p_max * r_1) if p_max > 1 else 1.0
    result["model"] = {
        "formula": "T(N) = t_fixed + songs / (N * r_1 * e)", "t_fixed_s": round(t_fixed, 2),
        "r_1_songs_per_s": round(r_1, 2), "e": round(e, 3), "e_from_partitions": p_max,
        "songs": PROJECT_SONGS,
        "T_hours": {n: round(s / 3600, 2) for n, s in project(t_fixed, r_1, e).items()},
        "assumes": ("one task per executor core (N executors x 1 core), one model load per "
                    "partition (inside t_fixed), even spread of songs, no shuffle of lyrics, e "
                    "from 2 local cores holds at N (e = 1 at N = 1); ignores stragglers, "
                    "executor start-up and the driver's merge"),
    }
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result["merge"] = merge_memory(20_000 if quick else 200_000)
    return result


_MERGE_CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
how, parts, out = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
t = time.perf_counter()
if how == "stream":
    from training.label_spark import _write_catalogue
    _write_catalogue(out, out.with_name("none.partial"), parts, 0)
else:  # the obvious alternative: every song as an object, sorted, then Catalog.save
    from indexing.catalog import Catalog, Song
    rows = []
    for f in sorted(parts.glob("*.jsonl")):
        for line in f.open(encoding="utf-8"):
            pos, d = json.loads(line)
            rows.append((pos, Song.from_json(d)))
    rows.sort(key=lambda r: r[0])
    Catalog([s for _, s in rows]).save(out)
peak = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
print(json.dumps({"seconds": round(time.perf_counter() - t, 2), "peak_rss_mb": round(peak / 1024)}))
"""


def merge_memory(n_songs: int = 200_000, files: int = 16) -> dict[str, Any]:
    """The driver's last step at scale: ``n_songs`` labelled songs in ``files`` part files
    merged into one catalogue in input order, streamed (``_write_catalogue``) vs every song
    loaded and sorted. Each in its own process, so peak RSS is its own."""
    import json
    import random
    import subprocess
    import sys

    from indexing.catalog import load_default

    root = Path(__file__).resolve().parents[1]
    base = [s.to_json() for s in load_default()]
    rng = random.Random(0)
    order = list(range(n_songs))
    rng.shuffle(order)  # a partition's rows are not in input order after the repartition
    out: dict[str, Any] = {"songs": n_songs, "part_files": files}
    with tempfile.TemporaryDirectory() as td:
        parts = Path(td) / "parts"
        parts.mkdir()
        handles = [(parts / f"run000-p{i:05d}-a0.jsonl").open("w", encoding="utf-8")
                   for i in range(files)]
        for k, pos in enumerate(order):
            d = dict(base[pos % len(base)], song_id=f"bench:{pos}")
            handles[k % files].write(json.dumps([pos, d], ensure_ascii=False) + "\n")
        for h in handles:
            h.close()
        for how in ("stream", "load_all"):
            done = subprocess.run([sys.executable, "-c", _MERGE_CHILD, str(root), how,
                                   str(parts), str(Path(td) / f"{how}.jsonl")],
                                  capture_output=True, text=True, check=True)
            out[how] = json.loads(done.stdout.strip().splitlines()[-1])
        a, b = (Path(td) / "stream.jsonl").read_bytes(), (Path(td) / "load_all.jsonl").read_bytes()
        out["identical_output"] = a == b
    per_song = out["load_all"]["peak_rss_mb"] / n_songs
    out["load_all_projected_700k_gb"] = round(per_song * PROJECT_SONGS / 1024, 1)
    return out


def table(result: dict[str, Any]) -> str:
    """The result as markdown (what ``main`` prints)."""
    lines = [f"labelling {result['songs']} songs (fp32)", "",
             "| engine | threads/task | partitions | seconds | songs/s | songs/s − fixed |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['engine']} | {r['threads']} | {r['partitions'] or '–'} | "
                     f"{r['seconds']} | {r['songs_per_s']} | "
                     f"{r.get('songs_per_s_minus_fixed', '–')} |")
    m = result["model"]
    lines += ["", f"Spark session start {result['spark_start_s']} s (None: already running); "
              f"first labelling call {result['spark_first_run_s']} s; "
              f"t_fixed (warm, 4 songs) {m['t_fixed_s']} s", "",
              f"{m['formula']}: t_fixed = {m['t_fixed_s']} s, r_1 = {m['r_1_songs_per_s']} "
              f"songs/s, e = {m['e']} (1→{m['e_from_partitions']} partitions)", "",
              "| executors N | T(700k) hours |", "|---|---|"]
    lines += [f"| {n} | {h} |" for n, h in m["T_hours"].items()]
    lines += ["", f"assumes: {m['assumes']}", f"load average: {result['load_average']}"]
    mm = result.get("merge")
    if mm:
        lines += ["", f"driver merge of {mm['songs']:,} labelled songs from {mm['part_files']} "
                  "part files (identical output: " + str(mm["identical_output"]) + ")", "",
                  "| merge | seconds | peak RSS MB |", "|---|---|---|",
                  f"| streamed (heapq over sorted part files) | {mm['stream']['seconds']} | "
                  f"{mm['stream']['peak_rss_mb']} |",
                  f"| every song loaded and sorted | {mm['load_all']['seconds']} | "
                  f"{mm['load_all']['peak_rss_mb']} |",
                  f"(loading all would need ≈ {mm['load_all_projected_700k_gb']} GB at 700k)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--songs", type=int, default=640)
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    result = measure(args.songs, quick=args.quick, csv=args.csv)
    print(table(result))
    write_results(args.out, {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                             "machine": machine(), **result})
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
