"""CF training on Spark MLlib: the ``implicit`` trainer's model, for stores too big for one box.

``moodtune train-cf --engine spark`` exports the store's feedback to a Parquet snapshot
(:func:`training.feedback_source.export_parquet`) and calls :func:`train_spark`, which does in
Spark what :mod:`training.cf` does in numpy/scipy, then writes the *same* artifact
(:func:`indexing.cf.save_cf`), so the bot cannot tell which engine trained it (``cf.json``'s
``engine`` says):

* per-event weight = signal × scope × half-life decay (:data:`training.cf.SIGNAL_WEIGHTS`,
  ``SCOPE_WEIGHTS``, the same reference time as :func:`training.cf.event_weights`);
* each event also counts ``side_weight`` × towards its song's artist and genre pseudo-items
  (a join with a song-meta DataFrame built from the catalogue);
* summed per (user, item); a net |w| < 1e-6 (a like and a dislike that cancel) is dropped;
* ``pyspark.ml.recommendation.ALS(implicitPrefs=True)`` on the net weight ``w`` itself. Spark's
  implicit solver uses confidence ``1 + alpha·|w|`` and preference ``1 if w > 0 else 0``, exactly
  the convention ``training.cf`` feeds ``implicit`` as ``sign(w)·(1 + alpha·|w|)``: a dislike is
  a confident "no", not a missing value;
* user and item factors are collected to the driver; song factors are blended with their
  artist's and genre's by :func:`training.cf.blend_item_factors` (the same code).

Regularization is *not* the same number. ``implicit`` adds a plain ``λ·|x|²`` per user/item;
Spark uses ALS-WR and adds ``regParam · n⁺·|x|²`` where ``n⁺`` is the row's number of
*positive* ratings, so a heavy user or a genre pseudo-item with thousands of events is
regularized thousands of times harder. Passing ``CFConfig.regularization`` (10) as
``regParam`` over-smooths everything into popularity. Spark therefore takes its own
``spark_regularization`` (CLI ``--spark-regularization``, default
:data:`DEFAULT_SPARK_REGULARIZATION`), measured on the simulated benchmark
(``benchmarks/spark_cf.py``; see that constant for the sweep) as the value that matches the
implicit trainer's held-out hit@5.

Local (tests, a single box)::

    moodtune train-cf --engine spark --db var/moodtune.sqlite3 --master 'local[2]'

On a cluster: export a snapshot (a local file; pyarrow writes it), put it where every executor
can read it, then submit ``deploy/spark_job.py`` (``moodtune`` under spark-submit). The driver
needs moodtune's dependencies installed and its code, which ``--py-files`` provides; executors
run only Spark's JVM ALS and DataFrame work, no moodtune Python code::

    moodtune train-cf --export-only --snapshot var/feedback.parquet   # reads $DATABASE_URL
    hdfs dfs -put -f var/feedback.parquet /moodtune/feedback.parquet   # or an NFS/S3 path
    git archive -o moodtune.zip HEAD
    spark-submit --master yarn --deploy-mode client \
        --conf spark.sql.shuffle.partitions=200 --driver-memory 4g --executor-memory 4g \
        --py-files moodtune.zip deploy/spark_job.py \
        train-cf --engine spark --snapshot hdfs:///moodtune/feedback.parquet --out var/cf \
        --catalog indexing/data/catalog.jsonl
    moodtune publish-cf --cf var/cf      # every replica on the shared database adopts it

``tests/test_cf_spark.py`` runs exactly this with ``--master local[2]``. The artifact is written
on the driver's local disk (``--out``), where the bot reads it; ``/retrain`` still uses ``implicit``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from training.cf import (
    _DAY,
    SCOPES,
    SIGNALS,
    CFConfig,
    CFTrainingError,
    NoFeedbackError,
    SongMeta,
    TrainingMatrix,
    blend_item_factors,
    matrix_stats,
    model_info,
    peak_rss_mb,
    side_items,
    write_model,
)
from training.feedback_source import COLUMNS

__all__ = ["DEFAULT_SPARK_REGULARIZATION", "train_spark"]

# Spark's regParam. ALS-WR regularizes a row by regParam × its positive ratings n⁺, implicit by a
# flat λ = CFConfig.regularization (10). Matching them for the typical user gives
# regParam ≈ λ / mean n⁺ per user: on benchmarks/spark_cf.py's 1× data (seed 1) a user has
# n⁺ ≈ 58 (median 35) positive song/artist/genre pairs, so 10/58 ≈ 0.17. Measured there (2,000
# held-out requests, implicit hit@5 0.178): regParam 0.01 / 0.03 / 0.1 gave 0.183 / 0.182 /
# 0.186 (|Δ| ≤ 0.008), 0.3 / 1.0 gave 0.195 / 0.198 (|Δ| 0.017 / 0.020: a different, smoother
# model). 0.1 is the largest value of the plateau that reproduces the implicit model (the
# benchmark's --sweep re-measures it; benchmarks/results/spark_cf.json has the 1×–100× run).
DEFAULT_SPARK_REGULARIZATION = 0.1
def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"train-cf[spark]: {msg}", file=sys.stderr, flush=True)


def session_for(spark: Any, master: str | None) -> Any:
    """The caller's session, else the active one (tests, spark-submit), else a new local one."""
    if spark is not None:
        return spark
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    from training.spark import session

    return session("moodtune-train-cf", master=master)


def _weights_df(df: Any, config: CFConfig, until: float | None) -> Any:
    """``(user_id, song_id, w, created_at)`` per event with a known signal and scope."""
    from pyspark.sql import functions as F

    sig = F.create_map(*[x for s in SIGNALS for x in (F.lit(s),
                                                       F.lit(float(config.signal_weights[s])))])
    scp = F.create_map(*[x for s in SCOPES for x in (F.lit(s),
                                                      F.lit(float(config.scope_weights[s])))])
    ev = df.select("user_id", "song_id", "created_at",
                   (sig[F.col("signal")] * scp[F.col("scope")]).alias("w"))
    known = ev.where(F.col("w").isNotNull() & F.col("created_at").isNotNull()
                     & F.col("user_id").isNotNull() & F.col("song_id").isNotNull())
    if config.half_life_days:
        ref = until
        if ref is None:
            ref = known.agg(F.max("created_at")).first()[0]
        age_days = F.greatest(F.lit(float(ref)) - F.col("created_at"), F.lit(0.0)) / _DAY
        known = known.withColumn(
            "w", F.col("w") * F.pow(F.lit(0.5), age_days / float(config.half_life_days)))
    return known.select(F.col("user_id").cast("string"), F.col("song_id").cast("string"),
                        "w", "created_at")


def _ids(rows: Any, key: str) -> tuple[list[str], np.ndarray]:
    """Collected ``(key, n)`` rows → ids in a stable order and their counts."""
    pairs = sorted((r[key], int(r["n"])) for r in rows)
    return [p[0] for p in pairs], np.asarray([p[1] for p in pairs], dtype=np.int64)


def train_spark(snapshot_parquet: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                config: CFConfig | None = None, *, song_meta: SongMeta | None = None,
                spark: Any = None, since: float | None = None, until: float | None = None,
                progress: bool = False, source: Mapping[str, Any] | None = None,
                spark_regularization: float = DEFAULT_SPARK_REGULARIZATION,
                master: str | None = None) -> dict[str, Any]:
    """Fit implicit-feedback ALS on Spark from a feedback snapshot; write the CF artifact.

    ``snapshot_parquet`` has the columns of :func:`training.feedback_source.export_parquet`;
    ``since``/``until`` filter it (half-open) and are recorded. Returns a summary shaped like
    :func:`training.cf.train`'s. Raises :class:`NoFeedbackError` (nothing in the window, or all
    of it cancels) or :class:`CFTrainingError` before anything is written.
    """
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    config = config or CFConfig()
    if spark_regularization < 0:
        raise ValueError("spark_regularization must be >= 0")
    started = time.perf_counter()
    spark = session_for(spark, master)
    _say(progress, f"reading {snapshot_parquet}")
    try:
        raw = spark.read.parquet(str(snapshot_parquet))
    except Exception as exc:  # AnalysisException for a missing path, assorted py4j errors
        raise CFTrainingError(f"cannot read the snapshot {snapshot_parquet}: {exc}") from exc
    missing = set(COLUMNS) - set(raw.columns)
    if missing:
        raise CFTrainingError(f"{snapshot_parquet} lacks the columns {sorted(missing)}; write it "
                              "with training.feedback_source.export_parquet")
    if since is not None:
        raw = raw.where(F.col("created_at") >= float(since))
    if until is not None:
        raw = raw.where(F.col("created_at") < float(until))
    raw = raw.cache()
    by_signal = {r["signal"]: int(r["n"]) for r in
                 raw.groupBy("signal").agg(F.count("*").alias("n")).collect()}
    by_scope = {r["scope"]: int(r["n"]) for r in
                raw.groupBy("scope").agg(F.count("*").alias("n")).collect()}
    n_raw = sum(by_signal.values())
    if n_raw == 0:
        raw.unpersist()
        window = "" if since is None and until is None else f" in [{since}, {until})"
        raise NoFeedbackError(f"no feedback events{window} in {snapshot_parquet}; nothing to "
                              "learn yet")

    _say(progress, f"aggregating {n_raw:,} events")
    ev = _weights_df(raw, config, until)
    ev = ev.cache()
    span = ev.agg(F.count("*").alias("n"), F.min("created_at").alias("t0"),
                  F.max("created_at").alias("t1")).first()
    n_events = int(span["n"])
    skipped = n_raw - n_events
    if n_events == 0:
        raise NoFeedbackError(f"none of the {n_raw} feedback rows has a known signal/scope")
    user_ids, user_events = _ids(ev.groupBy("user_id").agg(F.count("*").alias("n")).collect(),
                                 "user_id")
    item_ids, item_events = _ids(ev.groupBy("song_id").agg(F.count("*").alias("n")).collect(),
                                 "song_id")
    n_u, n_s = len(user_ids), len(item_ids)
    # Song → (song column, artist column, genre column): the same layout as build_matrix.
    artist_of, genre_of, n_artists, n_genres = side_items(item_ids, config, song_meta)
    song_artist = np.where(artist_of >= 0, artist_of.astype(np.int64) + n_s, -1)
    song_genre = np.where(genre_of >= 0, genre_of.astype(np.int64) + n_s + n_artists, -1)
    import pandas as pd

    users_df = spark.createDataFrame(pd.DataFrame(
        {"user_id": user_ids, "u": np.arange(n_u, dtype=np.int32)}))
    meta_df = spark.createDataFrame(pd.DataFrame(
        {"song_id": item_ids, "i": np.arange(n_s, dtype=np.int32),
         "ia": song_artist.astype(np.int32), "ig": song_genre.astype(np.int32)}))
    joined = ev.join(users_df, "user_id").join(meta_df, "song_id")
    side = float(config.side_weight)
    rows = joined.select("u", "i", "w")
    if n_artists or n_genres:
        rows = rows.unionByName(
            joined.where(F.col("ia") >= 0).select("u", F.col("ia").alias("i"),
                                                  (F.col("w") * side).alias("w"))
        ).unionByName(
            joined.where(F.col("ig") >= 0).select("u", F.col("ig").alias("i"),
                                                  (F.col("w") * side).alias("w")))
    summed = rows.groupBy("u", "i").agg(F.sum("w").alias("w")).cache()
    counts = summed.agg(
        F.sum((F.abs("w") < 1e-6).cast("long")).alias("cancelled"),
        F.sum(((F.abs("w") >= 1e-6) & (F.col("i") < n_s)).cast("long")).alias("pairs"),
        F.sum(((F.col("w") <= -1e-6) & (F.col("i") < n_s)).cast("long")).alias("negative"),
    ).first()
    cancelled, n_pairs, n_negative = (int(counts[k] or 0) for k in
                                      ("cancelled", "pairs", "negative"))
    if n_pairs == 0:
        summed.unpersist()
        raise NoFeedbackError(f"all {n_events} feedback events cancel out; nothing to learn")
    ratings = summed.where(F.abs("w") >= 1e-6).select(
        "u", "i", F.col("w").cast("float").alias("w")).cache()
    built = time.perf_counter()

    _say(progress, f"fitting ALS on {n_pairs:,} song pairs ({n_u:,} users × {n_s:,} songs, "
                   f"{n_artists + n_genres:,} artist/genre columns)")
    blocks = max(2, min(10, int(spark.sparkContext.defaultParallelism)))
    n_cols = n_s + n_artists + n_genres
    # ALS-WR gives a row with no positive rating (a user or song with only skips/dislikes) no
    # regularization at all, so its normal equations are singular when the other side has
    # fewer rows than factors (a new bot with 10 users and 32 factors): Spark's Cholesky then
    # fails. implicit's flat lambda never hits this; here the rank is capped to fit the data.
    rank = max(1, min(config.factors, n_u - 1, n_cols - 1))
    als = ALS(userCol="u", itemCol="i", ratingCol="w", implicitPrefs=True,
              alpha=float(config.alpha), rank=rank, maxIter=config.iterations,
              regParam=float(spark_regularization), seed=config.seed, nonnegative=False,
              # Spark's default 10×10 blocks are 100 tiny tasks per sweep on a 2-core box;
              # one block per core is as parallel and several times faster in local mode.
              numUserBlocks=blocks, numItemBlocks=blocks)
    try:
        model = als.fit(ratings)
        uf = np.zeros((n_u, rank), dtype=np.float32)
        all_items = np.zeros((n_cols, rank), dtype=np.float32)
        for target, frame in ((uf, model.userFactors), (all_items, model.itemFactors)):
            pdf = frame.toPandas()
            if len(pdf):
                target[pdf["id"].to_numpy()] = np.stack(pdf["features"].to_numpy())
    except Exception as exc:
        hint = ("; too little data for this many factors: lower --factors"
                if "SingularMatrix" in str(exc) else "")
        raise CFTrainingError(f"Spark ALS failed{hint}: {type(exc).__name__}: "
                              f"{str(exc)[:2000]}") from exc
    finally:
        for df in (raw, ev, summed):
            df.unpersist()
    if not (np.isfinite(uf).all() and np.isfinite(all_items).all()):
        raise CFTrainingError("ALS diverged (NaN factors); raise --spark-regularization")
    tm = TrainingMatrix(matrix=None, user_ids=user_ids, item_ids=item_ids,
                        user_events=user_events, item_events=item_events,
                        song_artist=song_artist, song_genre=song_genre, stats={})
    itf = blend_item_factors(tm, all_items, config)
    fitted = time.perf_counter()
    auc = _sampled_auc(ratings, n_s, uf, itf, config.seed, n_pairs)
    ratings.unpersist()

    _say(progress, f"writing {out_dir}")
    from pyspark import __version__ as spark_version

    stats = matrix_stats(
        n_events=n_events, n_pairs=n_pairs, n_negative=n_negative, cancelled=cancelled,
        n_side=n_artists + n_genres, song_artist=song_artist, song_genre=song_genre,
        n_users=n_u, n_songs=n_s, by_signal=by_signal, by_scope=by_scope)
    info = model_info(
        config,
        head={"engine": "spark",
              "spark": {"version": spark_version, "master": spark.sparkContext.master,
                        "regParam": spark_regularization, "rank": rank,
                        "regularization_note": "ALS-WR: regParam × the row's positive ratings"}},
        data={"since": since, "until": until, "first_event_at": float(span["t0"]),
              "last_event_at": float(span["t1"]), "snapshot": str(snapshot_parquet),
              **({"source": dict(source)} if source else {})},
        n_events=n_events,
        params={"spark_regularization": spark_regularization},
        confidence="Spark implicit ALS on the net w = sum of signal*scope*decay per (user, "
                   "item): confidence 1 + alpha*|w|, preference 1 if w > 0 else 0",
        metrics={**stats, "skipped_rows": skipped, "matrix_seconds": round(built - started, 3),
                 "fit_seconds": round(fitted - built, 3), "sampled_train_auc": round(auc, 4),
                 "driver_peak_rss_mb": round(peak_rss_mb(), 1)})
    out, model_id = write_model(out_dir, user_ids=user_ids, item_ids=item_ids, user_factors=uf,
                                item_factors=itf, user_events=user_events, info=info)
    return {
        "model_id": model_id,
        "engine": "spark",
        "out": str(out),
        "users": n_u,
        "songs": n_s,
        "events": n_events,
        "pairs": n_pairs,
        "negative_pairs": n_negative,
        "songs_with_metadata": stats["songs_with_metadata"],
        "fit_seconds": round(fitted - built, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "sampled_train_auc": round(auc, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _sampled_auc(ratings: Any, n_songs: int, uf: np.ndarray, itf: np.ndarray, seed: int,
                 n_pairs: int, n: int = 5000) -> float:
    """:func:`training.cf._sampled_auc` on a Spark sample of the positive song pairs (a sanity
    figure: ~0.5 means nothing was learned)."""
    from pyspark.sql import functions as F

    pos = ratings.where((F.col("w") > 0) & (F.col("i") < n_songs))
    frac = min(1.0, 1.5 * n / max(n_pairs, 1))
    sample = pos.sample(fraction=frac, seed=seed).limit(n).toPandas()
    if sample.empty:
        return float("nan")
    u, i = sample["u"].to_numpy(), sample["i"].to_numpy()
    j = np.random.default_rng(seed).integers(0, itf.shape[0], size=len(u))
    s_pos = np.einsum("ij,ij->i", uf[u], itf[i])
    s_neg = np.einsum("ij,ij->i", uf[u], itf[j])
    return float(np.mean((s_pos > s_neg) + 0.5 * (s_pos == s_neg)))


