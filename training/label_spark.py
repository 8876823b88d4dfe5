"""``moodtune label --engine spark``: the lyric labeller at Kakao Arena scale, on Spark.

Why Spark here: labelling is embarrassingly parallel (each song is chunked, classified and
aggregated on its own) and at hundreds of thousands of songs one process takes hours; Spark
spreads the songs over executors and restarts a lost task elsewhere. Nothing about *what* a song
becomes changes: every partition runs the same code as the local labeller
(:func:`training.label.song_chunks`, ``_chunk_weights`` and
:func:`training.label.song_from_probs`), so the catalogue is the same format, line for line.

How it runs:

1. **Normalise** the input into one row per song with its input position (``pos``), its stable
   id and its (title, artist) key — rows without a title are dropped, as ``read_lyrics_csv``
   does. Input is a Spark DataFrame, a Parquet/CSV lyrics table (``title,artist,lyrics`` +
   optional ``genre,album,year,melon_id``) or, for the CLI's other inputs, the local readers'
   ``SongText`` rows (:func:`songs_dataframe`).
2. **Deduplicate** like ``label_songs``: a song whose id is in a partial output of an earlier run
   is skipped; a song whose key belongs to a done song or to an earlier song with text is a
   duplicate; a song without text is counted as empty. Only (key, pos) pairs are shuffled for
   this; the duplicate positions (few) come back to the driver and are broadcast.
3. **Label** with ``mapInPandas``: each partition loads ONE :class:`EmotionClassifier` (the ONNX
   session is the expensive part: ~1 s and ~100 MB), classifies its songs ``songs_per_batch`` at a
   time and appends each finished song to its own part file (``<out>.parts/``), flushed per
   batch — the resume point. The task returns one stats row (classifier loads, songs, chunks,
   seconds) so the one-session-per-partition contract is checked, not assumed.
4. **Merge** on the driver: earlier runs' songs first (as ``label_songs`` puts its partial output
   first), then this run's songs in input order, written atomically with ``Catalog.save``; the
   partial output is removed only then.

Where files live: executors read the model directory and write the part files at the paths the
driver gives, so on a cluster both must be on storage every node sees (NFS, a mounted bucket).
The model can instead be shipped with the job: ``ship_model=True`` (CLI ``--ship-model``) calls
``spark.sparkContext.addFile(model_dir, recursive=True)`` and each task opens its local copy
through ``SparkFiles.get(<dir name>)`` (pass ``--model-dir`` when moodtune is installed as a zip
or wheel: the shipped model must be a real directory on the driver). The executors' Python needs
moodtune and its dependencies (numpy, onnxruntime, tokenizers, pandas, pyarrow): ship a packed
virtual environment, Spark's documented way for Python dependencies.

A cluster run (YARN; ``--master spark://host:7077`` or ``k8s://…`` the same way). This box has
no cluster; ``tests/test_label_spark.py`` runs the same command with ``--master local[2]``::

    # once: a relocatable venv with moodtune in it, unpacked as ./venv on every executor
    python -m venv build/venv && build/venv/bin/pip install '.[spark]' venv-pack
    build/venv/bin/venv-pack -o build/moodtune-venv.tar.gz
    git archive -o moodtune.zip HEAD          # the driver's copy of the code
    # the driver runs this checkout's Python; the executors the shipped one
    export PYSPARK_DRIVER_PYTHON=.venv/bin/python PYSPARK_PYTHON=./venv/bin/python
    spark-submit --master yarn --deploy-mode client \
        --archives build/moodtune-venv.tar.gz#venv \
        --num-executors 32 --executor-cores 1 --executor-memory 2g \
        --py-files moodtune.zip deploy/spark_job.py \
        label --engine spark --partitions 256 --ship-model \
        --model-dir inference/models/default \
        --table hdfs:///data/kakao_arena/lyrics.parquet --out /shared/moodtune/labelled.jsonl

``training.spark.session`` keeps the submitted master and resources, and ``PYSPARK_PYTHON`` as
exported. One executor core runs one task, i.e. one ONNX session with ``--threads`` intra-op
threads (default 1 for Spark); give the job several partitions per executor so that the last,
slowest partitions do not leave the others idle. ``--out`` is written by the driver; the
``<out>.parts`` directory beside it is written by the executors and must be shared.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexing.catalog import Song, normalise
from training.label import (
    LabelReport,
    SongText,
    log_held_out,
    song_chunks,
    song_id_for,
)

__all__ = ["SparkLabelReport", "label_spark", "read_table", "songs_dataframe"]

#: One normalised song per row, in the order the input gave them (``pos``).
CORE_SCHEMA = ("pos long, song_id string, title string, artist string, text string, "
               "source string, album string, genre string, year int, melon_id string, "
               "intended string, extra string")
_PREP_SCHEMA = CORE_SCHEMA + ", key string, nonempty boolean, done boolean, done_key boolean"
_STATS_SCHEMA = ("partition int, attempt int, loads int, songs int, labelled int, chunks long, "
                 "disagreed string, load_seconds double, seconds double")


@dataclass
class SparkLabelReport(LabelReport):
    """``LabelReport`` plus one stats row per labelling task (partition, classifier loads…)."""

    partitions: list[dict[str, Any]] = field(default_factory=list)
    spark_seconds: float = 0.0  # wall time of the labelling job alone (no merge, no dedup)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "partitions": len(self.partitions),
                "classifier_loads": sum(p["loads"] for p in self.partitions)}


# ---------------------------------------------------------------------------------- inputs
def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _from_table(batches: Iterator[Any], provenance: str) -> Iterator[Any]:
    """Lyrics-table rows → core rows, with exactly ``read_lyrics_csv``'s field handling."""
    import pandas as pd

    extra = json.dumps({"provenance": provenance}, ensure_ascii=False)
    for b in batches:
        out = []
        for r in b.to_dict("records"):
            title, artist = _text(r.get("title")).strip(), _text(r.get("artist")).strip()
            if not title:
                continue
            year = _text(r.get("year")).strip()
            melon_id = _text(r.get("melon_id")).strip() or None
            out.append({
                "pos": int(r["pos"]), "song_id": song_id_for(title, artist, melon_id),
                "title": title, "artist": artist, "text": _text(r.get("lyrics")),
                "source": "lyrics", "album": _text(r.get("album")).strip() or None,
                "genre": _text(r.get("genre")).strip() or None,
                "year": int(year) if year.isdigit() else None, "melon_id": melon_id,
                "intended": None, "extra": extra})
        yield _core_frame(pd, out)


def _core_frame(pd: Any, rows: list[dict]) -> Any:
    cols = [c.split()[0] for c in CORE_SCHEMA.split(", ")]
    df = pd.DataFrame(rows, columns=cols)
    df["year"] = df["year"].astype("Int32")
    df["pos"] = df["pos"].astype("int64")
    return df


def read_table(spark: Any, path: str | Path) -> Any:
    """A Parquet (file or directory) or CSV lyrics table as a core DataFrame, in file order.

    CSV is read as ``read_lyrics_csv`` reads it: header row, quoted multi-line lyrics, every
    column a string (a year that is not digits is dropped, not guessed).
    """
    s = str(path)
    if s.lower().endswith((".csv", ".csv.gz")):
        df = (spark.read.option("header", True).option("multiLine", True)
              .option("escape", '"').option("encoding", "UTF-8").csv(s))
        df = df.toDF(*[c.lstrip("\ufeff") for c in df.columns])  # a BOM sticks to column one
    else:
        df = spark.read.parquet(s)
    return table_to_core(df, provenance=Path(s.rstrip("/")).name)


def table_to_core(df: Any, provenance: str = "table") -> Any:
    """A DataFrame with ``title, artist, lyrics`` (+ optional metadata) → core rows."""
    from pyspark.sql import functions as F

    missing = {"title", "artist", "lyrics"} - set(df.columns)
    if missing:
        raise ValueError(f"lyrics table: missing columns {sorted(missing)} (has {df.columns})")
    keep = [c for c in ("title", "artist", "lyrics", "genre", "album", "year", "melon_id")
            if c in df.columns]
    df = df.select(*keep).withColumn("pos", F.monotonically_increasing_id())
    return df.mapInPandas(lambda it: _from_table(it, provenance), CORE_SCHEMA)


def songs_dataframe(spark: Any, songs: Iterable[SongText], *, rows_per_slice: int = 20_000) -> Any:
    """The local readers' songs (CSV, crawl database, descriptions) as a core DataFrame.

    For the CLI's existing inputs: they are read on the driver exactly as ``--engine local``
    reads them and handed to Spark in slices (Arrow), so only labelling is distributed.
    """
    import pandas as pd

    frames = []
    rows: list[dict] = []
    for i, st in enumerate(songs):
        rows.append({
            "pos": i, "song_id": st.song_id, "title": st.title, "artist": st.artist,
            "text": st.text, "source": st.source, "album": st.album, "genre": st.genre,
            "year": st.year, "melon_id": None if st.melon_id is None else str(st.melon_id),
            "intended": st.intended,
            "extra": json.dumps(st.extra, ensure_ascii=False)})
        if len(rows) >= rows_per_slice:
            frames.append(_core_frame(pd, rows))
            rows = []
    frames.append(_core_frame(pd, rows))
    df = None
    for f in frames:
        part = spark.createDataFrame(f, schema=CORE_SCHEMA)
        df = part if df is None else df.unionAll(part)
    return df


def _as_core(spark: Any, songs: Any) -> Any:
    if isinstance(songs, str | Path):
        return read_table(spark, songs)
    if hasattr(songs, "mapInPandas"):
        return songs if "song_id" in songs.columns and "text" in songs.columns \
            else table_to_core(songs)
    return songs_dataframe(spark, songs)


def _st(r: dict) -> SongText:
    return SongText(
        song_id=r["song_id"], title=r["title"], artist=r["artist"] or "", text=r["text"] or "",
        source=r["source"] or "lyrics", album=r["album"], genre=r["genre"],
        year=None if r["year"] is None else int(r["year"]),  # NaN is None (_none_for_nan)
        melon_id=r["melon_id"], extra=json.loads(r["extra"] or "{}"), intended=r["intended"])


def _none_for_nan(b: Any) -> Any:
    return b.astype(object).where(b.notna(), None)


def _prepare(batches: Iterator[Any], max_chars: int, done_b: Any) -> Iterator[Any]:
    """Adds the dedup key, whether the song has text, and whether it (or its key) is done."""
    done_ids, done_keys = done_b.value
    for b in batches:
        b = b.copy()
        recs = _none_for_nan(b).to_dict("records")
        keys = [f"{normalise(r['title'])}\x1f{normalise(r['artist'] or '')}" for r in recs]
        b["key"] = keys
        b["nonempty"] = [bool(song_chunks(_st(r), max_chars)) for r in recs]
        b["done"] = [r["song_id"] in done_ids for r in recs]
        b["done_key"] = [k in done_keys for k in keys]
        yield b


# ---------------------------------------------------------------------------------- the task
def _label_partition(batches: Iterator[Any], *, model_dir: str, shipped: bool, variant: str,
                     threads: int, max_chars: int, songs_per_batch: int, parts_dir: str,
                     run: int, drop_b: Any) -> Iterator[Any]:
    """One Spark task: one classifier, this partition's songs, one part file, one stats row."""
    import numpy as np
    import pandas as pd
    from pyspark import SparkFiles, TaskContext

    from inference.classifier import EmotionClassifier
    from training.label import _chunk_weights, song_from_probs

    ctx = TaskContext.get()
    pid, attempt = (ctx.partitionId(), ctx.attemptNumber()) if ctx else (0, 0)
    drop = drop_b.value
    stats = {"partition": pid, "attempt": attempt, "loads": 0, "songs": 0, "labelled": 0,
             "chunks": 0, "load_seconds": 0.0}
    disagreed: list[tuple[str, str, str, str]] = []
    clf = None
    fh = None
    batch: list[tuple[int, SongText, list[str], Any, list[str]]] = []
    t0 = time.perf_counter()

    def flush() -> None:
        nonlocal clf, fh
        if not batch:
            return
        if clf is None:  # lazily: a partition with nothing to label loads nothing
            t = time.perf_counter()
            path = SparkFiles.get(Path(model_dir).name) if shipped else model_dir
            clf = EmotionClassifier.load(path, variant=variant, threads=threads, batch_size=64)
            stats["loads"] += 1
            stats["load_seconds"] += time.perf_counter() - t
        if fh is None:
            Path(parts_dir).mkdir(parents=True, exist_ok=True)
            name = f"run{run:03d}-p{pid:05d}-a{attempt}.jsonl"
            fh = open(Path(parts_dir) / name, "a", encoding="utf-8")  # noqa: SIM115
        texts = [c for _, _, chunks, _, _ in batch for c in chunks]
        probs = clf.predict(texts)
        stats["chunks"] += len(texts)
        at = 0
        for pos, st, chunks, w, all_chunks in batch:
            song, read = song_from_probs(st, probs[at : at + len(chunks)], w, all_chunks)
            at += len(chunks)
            if song is None:
                disagreed.append((st.title, st.artist, st.intended or "", read))
                continue
            fh.write(json.dumps([pos, song.to_json()], ensure_ascii=False) + "\n")
            stats["labelled"] += 1
        fh.flush()
        batch.clear()

    try:
        for b in batches:
            for r in _none_for_nan(b).to_dict("records"):
                pos = int(r["pos"])
                if not r["nonempty"] or r["done"] or pos in drop:
                    continue
                st = _st(r)
                chunks = song_chunks(st, max_chars)
                uniq, w = _chunk_weights(chunks)
                batch.append((pos, st, uniq, np.asarray(w), chunks))
                stats["songs"] += 1
                if len(batch) >= songs_per_batch:
                    flush()
        flush()
    finally:
        if fh is not None:
            fh.close()
    stats["seconds"] = time.perf_counter() - t0
    stats["disagreed"] = json.dumps(disagreed, ensure_ascii=False)
    yield pd.DataFrame([stats])


# ---------------------------------------------------------------------------------- driver
def _song_lines(path: Path, *, part: bool) -> Iterator[tuple[int, Song]]:
    """``(pos, song)`` of every complete line of a partial output (``part=False``; pos = line
    number) or a part file (``[pos, song]`` lines). A torn last line after a kill is skipped:
    that song is labelled again, as in ``label_songs``."""
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            try:
                if part:
                    pos, d = json.loads(line)
                else:
                    pos, d = n, json.loads(line)
                yield int(pos), Song.from_json(d)
            except Exception:
                continue


def _part_files(parts_dir: Path) -> dict[int, list[Path]]:
    """Part files by run number (``run<run>-p<partition>-a<attempt>.jsonl``)."""
    runs: dict[int, list[Path]] = {}
    if parts_dir.is_dir():
        for f in sorted(parts_dir.glob("run*-p*-a*.jsonl")):
            runs.setdefault(int(f.name[3:6]), []).append(f)
    return runs


def _in_input_order(files: list[Path]) -> Iterator[tuple[int, Song]]:
    """One run's songs in input order, holding one part file in memory at a time.

    Why not load every song and sort: a Kakao Arena–sized run is 700k songs, ~6 KB each as
    Python objects (4 GB on the driver). Each part file is sorted on its own (a partition's
    rows are not in input order after the round-robin repartition), spilled as ``pos`` + raw
    line, and the files are merged with ``heapq.merge``.
    """
    import heapq
    import tempfile

    with tempfile.TemporaryDirectory(prefix="moodtune-label-merge-") as tmp:
        sorted_files = []
        for i, f in enumerate(files):
            rows: list[tuple[int, str]] = []
            with f.open(encoding="utf-8") as fh:
                for line in fh:  # sorted as raw lines: songs are parsed once, in the merge
                    try:
                        rows.append((int(json.loads(line)[0]), line))
                    except Exception:  # a torn last line: that song is labelled again
                        continue
            rows.sort(key=lambda r: r[0])
            out = Path(tmp) / f"{i}.jsonl"
            with out.open("w", encoding="utf-8") as fh:
                fh.writelines(line if line.endswith("\n") else line + "\n" for _, line in rows)
            sorted_files.append(out)
            del rows
        yield from heapq.merge(*(_song_lines(f, part=True) for f in sorted_files),
                               key=lambda r: r[0])


def _done_so_far(partial: Path, parts_dir: Path) -> tuple[set[str], set[str]]:
    """Song ids and title/artist keys that earlier runs finished (ids and keys only: the
    songs themselves are streamed again when the catalogue is written)."""
    ids: set[str] = set()
    keys: set[str] = set()
    sources = [(partial, False)] if partial.exists() else []
    sources += [(f, True) for files in _part_files(parts_dir).values() for f in files]
    for path, part in sources:
        for _, song in _song_lines(path, part=part):
            ids.add(song.song_id)
            keys.add(f"{normalise(song.title)}\x1f{normalise(song.artist)}")
    return ids, keys


def _write_catalogue(out_path: Path, partial: Path, parts_dir: Path, run: int) -> tuple[int, int]:
    """Stream the catalogue atomically: the local engine's partial output, earlier runs' songs
    (run by run, in input order), then this run's; a song id only once (a retried task writes
    its songs twice). Returns ``(songs written, of them from this run)``."""
    import os
    import tempfile

    runs = _part_files(parts_dir)
    written: set[str] = set()
    new = 0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name, suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            streams: list[tuple[int | None, Iterator[tuple[int, Song]]]] = []
            if partial.exists():
                streams.append((None, _song_lines(partial, part=False)))
            streams += [(r, _in_input_order(runs[r])) for r in sorted(runs)]
            for r, stream in streams:
                for _, song in stream:
                    if song.song_id in written:
                        continue
                    written.add(song.song_id)
                    new += r == run
                    fh.write(json.dumps(song.to_json(), ensure_ascii=False) + "\n")
        if not written:
            raise ValueError("no song could be labelled: every input was empty or a duplicate")
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(written), new


def _count_lines(files: dict[Path, int], parts_dir: Path, run: int) -> int:
    """New lines in this run's part files since the last call (for the progress bar)."""
    new = 0
    for f in parts_dir.glob(f"run{run:03d}-p*-a*.jsonl"):
        with f.open("rb") as fh:
            fh.seek(files.get(f, 0))
            chunk = fh.read()
        files[f] = files.get(f, 0) + len(chunk)
        new += chunk.count(b"\n")
    return new


def label_spark(
    spark: Any,
    songs: Any,
    out_path: str | Path,
    *,
    model_dir: str | Path | None = None,
    variant: str = "fp32",
    partitions: int = 2,
    max_chars: int = 120,
    threads_per_task: int = 1,
    resume: bool = True,
    progress: bool = True,
    ship_model: bool = False,
    songs_per_batch: int = 32,
    log: Callable[[str], None] = print,
) -> SparkLabelReport:
    """Label ``songs`` on Spark and write the catalogue to ``out_path`` (JSON Lines, atomic).

    ``songs``: a DataFrame (a lyrics table, or core rows from :func:`songs_dataframe`), a path to
    a Parquet/CSV lyrics table, or an iterable of ``SongText``. The catalogue equals what
    ``label_songs`` writes for the same input (same ids, fields, order and counts); fp32 makes a
    song's vector independent of how songs are split into partitions and batches.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from tqdm.auto import tqdm

    from inference.classifier import ModelLoadError, default_model_dir

    t_start = time.perf_counter()
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    parts_dir = out_path.with_name(out_path.name + ".parts").resolve()
    mdir = Path(model_dir) if model_dir is not None else default_model_dir()
    if not (mdir / "moodtune.json").is_file():
        raise ModelLoadError(f"model directory not found or incomplete: {mdir}")
    if not resume:
        partial.unlink(missing_ok=True)
        shutil.rmtree(parts_dir, ignore_errors=True)

    # What earlier runs finished: the local engine's partial output, then the part files.
    done_ids, done_keys = _done_so_far(partial, parts_dir)
    run = 1 + max(_part_files(parts_dir), default=-1)
    report = SparkLabelReport(skipped_done=len(done_ids))
    sc = spark.sparkContext
    done_b = sc.broadcast((frozenset(done_ids), frozenset(done_keys)))
    del done_keys

    core = _as_core(spark, songs)
    prep = core.mapInPandas(lambda it: _prepare(it, max_chars, done_b), _PREP_SCHEMA)
    prep = prep.repartition(max(1, int(partitions))).persist()
    try:
        # Dedup exactly as label_songs: first song with text per key wins; done keys lose.
        live = prep.filter(~F.col("done"))
        first = F.min(F.when(F.col("nonempty"), F.col("pos"))).over(Window.partitionBy("key"))
        dup = F.col("done_key") | (first.isNotNull() & (F.col("pos") > first))
        flags = live.select("pos", "nonempty", dup.alias("dup"))
        agg = flags.agg(
            F.count(F.lit(1)).alias("n"),
            F.collect_list(F.when(F.col("dup"), F.col("pos"))).alias("dups"),
            F.sum(F.when(~F.col("dup") & ~F.col("nonempty"), 1).otherwise(0)).alias("empty"),
        ).first()
        dup_pos = frozenset(agg["dups"])
        report.duplicates = len(dup_pos)
        report.empty = int(agg["empty"] or 0)
        to_label = int(agg["n"]) - report.duplicates - report.empty

        if ship_model:
            sc.addFile(str(mdir.resolve()), recursive=True)
        drop_b = sc.broadcast(dup_pos)
        kwargs = {"model_dir": str(mdir.resolve()), "shipped": ship_model, "variant": variant,
                  "threads": threads_per_task, "max_chars": max_chars,
                  "songs_per_batch": songs_per_batch, "parts_dir": str(parts_dir), "run": run,
                  "drop_b": drop_b}
        job = prep.mapInPandas(lambda it: _label_partition(it, **kwargs), _STATS_SCHEMA)

        bar = tqdm(total=to_label, disable=not progress, unit="song", desc="labelling (spark)")
        stop = threading.Event()
        offsets: dict[Path, int] = {}

        def poll() -> None:
            while not stop.wait(0.5):
                if parts_dir.is_dir():
                    bar.update(_count_lines(offsets, parts_dir, run))

        watcher = threading.Thread(target=poll, daemon=True)
        if progress:
            watcher.start()
        t_job = time.perf_counter()
        try:
            stats = [r.asDict() for r in job.collect()]
        finally:
            stop.set()
            if progress:
                watcher.join()
                bar.update(_count_lines(offsets, parts_dir, run) if parts_dir.is_dir() else 0)
            bar.close()
        report.spark_seconds = time.perf_counter() - t_job
    finally:
        prep.unpersist()

    report.partitions = sorted(stats, key=lambda s: (s["partition"], s["attempt"]))
    report.chunks = sum(s["chunks"] for s in stats)
    for s in report.partitions:
        report.disagreed.extend(tuple(d) for d in json.loads(s["disagreed"]))
    _, report.labelled = _write_catalogue(out_path, partial, parts_dir, run)
    report.seconds = time.perf_counter() - t_start
    partial.unlink(missing_ok=True)
    shutil.rmtree(parts_dir, ignore_errors=True)
    log(f"labelled {report.labelled} songs on Spark ({len(stats)} partitions, "
        f"{sum(s['loads'] for s in stats)} classifier loads; {report.skipped_done} from an "
        f"earlier run, {report.empty} without text, {report.duplicates} duplicates) in "
        f"{report.seconds:.1f}s = {report.songs_per_second:.1f} songs/s, {report.chunks} chunks "
        f"-> {out_path}")
    log_held_out(report, log)
    return report
