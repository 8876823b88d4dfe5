"""Benchmark: does Spark ALS (``train-cf --engine spark``) learn the ``implicit`` trainer's model?

    python -m benchmarks.spark_cf            # 1×, 10×, 100× of 20k events (minutes, 2 cores)
    python -m benchmarks.spark_cf --quick    # 1× and 10× of 5k events
    python -m benchmarks.spark_cf --sweep 0.01,0.03,0.1,0.3   # Spark regParam candidates

Same data for both engines at each scale: ``benchmarks.cf``'s generator-mode world (users with
hidden tastes, a uniformly random logging policy over the exact top-60 mood candidates) with
users and songs growing with the events; the training window (before day 48) is written into a
real store database. The implicit engine runs ``training.cf.train_from_db`` on it (store read +
fit + write); the Spark engine exports the Parquet snapshot (``export_parquet``) and runs
``train_spark`` on an already-started local session (``local[2]``; the ~8 s JVM start-up is
reported once, separately). Both artifacts are loaded with ``indexing.cf.CFModel`` and scored
by ``benchmarks.cf.evaluate`` on the same held-out requests (hit@5 of the engine's ``rerank``
with CF scores). Target: |Δ hit@5| ≤ 0.01.

:func:`compare` has no side effects beyond temp dirs (``benchmarks/scale.py`` imports it);
:func:`main` prints a markdown table and writes ``benchmarks/results/spark_cf.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "spark_cf.json"
BASE_EVENTS = 20_000
EVENTS_PER_USER = 50
BASE_SONGS = 2000


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _one_scale(scale: int, base_events: int, seed: int, eval_requests: int, spark: Any,
               regs: tuple[float, ...], work: Path) -> dict[str, Any]:
    from benchmarks.cf import SPLIT_DAY, evaluate, make_world, write_store
    from indexing.cf import CFModel
    from training.cf import CFConfig, read_song_meta, train_from_db
    from training.cf_spark import train_spark
    from training.feedback_source import export_parquet
    from training.simulate import DAY

    events = base_events * scale
    users = max(50, events // EVENTS_PER_USER)
    songs = int(BASE_SONGS * scale ** 0.5)
    work.mkdir(parents=True, exist_ok=True)
    _log(f"[{scale}×] generating {events:,} events ({users:,} users, {songs:,} songs)")
    song_list, catalog, taste, log = make_world(users, songs, events, seed, work)
    split = taste.config.start + SPLIT_DAY * DAY
    train_req = np.flatnonzero(log.req_time < split)
    train_mask = log.req_time[log.request] < split
    db = work / "bot.sqlite3"
    write_store(db, taste, log, train_req)
    config = CFConfig()
    row: dict[str, Any] = {"scale": f"{scale}×", "events": int(train_mask.sum()),
                           "users": users, "songs": songs}
    _log(f"[{scale}×] implicit: train_from_db")
    t = time.perf_counter()
    s_imp = train_from_db(db, work / "cf_implicit", config, catalog_path=catalog)
    row["implicit_seconds"] = round(time.perf_counter() - t, 2)
    row["implicit_fit_seconds"] = s_imp["fit_seconds"]
    row["implicit_peak_rss_mb"] = s_imp["peak_rss_mb"]
    models = {"implicit": CFModel.load(work / "cf_implicit", min_events=5)}
    _log(f"[{scale}×] spark: export_parquet")
    t = time.perf_counter()
    snap = export_parquet(db, work / "feedback.parquet")
    row["spark_export_seconds"] = round(time.perf_counter() - t, 2)
    meta = read_song_meta(catalog)
    row["spark"] = {}
    for reg in regs:
        _log(f"[{scale}×] spark: train_spark regParam={reg}")
        t = time.perf_counter()
        s_sp = train_spark(snap["path"], work / f"cf_spark_{reg}", config, song_meta=meta,
                           spark=spark, spark_regularization=reg)
        row["spark"][str(reg)] = {"train_seconds": round(time.perf_counter() - t, 2),
                                  "fit_seconds": s_sp["fit_seconds"],
                                  "sampled_train_auc": s_sp["sampled_train_auc"]}
        models[f"spark {reg}"] = CFModel.load(work / f"cf_spark_{reg}", min_events=5)
    test_pos = (~train_mask) & (log.signal <= 2) & (log.scope == 0)
    test_requests = np.unique(log.request[test_pos])
    rng = np.random.default_rng([seed, 8])
    if len(test_requests) > eval_requests:
        test_requests = np.sort(rng.choice(test_requests, eval_requests, replace=False))
    train_events = np.bincount(log.user[train_mask], minlength=taste.n_users)
    _log(f"[{scale}×] evaluating {len(test_requests):,} test requests")
    ev = evaluate(song_list, taste, log, test_requests, train_events, train_mask, models, seed)
    row["test_requests"] = len(test_requests)
    row["hit@5"] = {"mood only": ev["mood only"]["hit@5"], "implicit": ev["implicit"]["hit@5"],
                    **{f"spark {r}": ev[f"spark {r}"]["hit@5"] for r in regs}}
    for reg in regs:
        row["spark"][str(reg)]["hit@5"] = ev[f"spark {reg}"]["hit@5"]
        row["spark"][str(reg)]["abs_delta_hit@5"] = round(
            abs(ev[f"spark {reg}"]["hit@5"] - ev["implicit"]["hit@5"]), 4)
    return row


def compare(scales: tuple[int, ...] = (1, 10, 100), base_events: int = BASE_EVENTS,
            quick: bool = False, *, seed: int = 1, eval_requests: int | None = None,
            spark_regularizations: tuple[float, ...] | None = None,
            spark: Any = None) -> dict[str, Any]:
    """Train both engines on the same simulated store at each scale; return the figures.

    ``quick`` shrinks it (5k base events, 1× and 10× unless ``scales`` says otherwise, 600 test
    requests). ``spark_regularizations`` defaults to the shipped
    :data:`training.cf_spark.DEFAULT_SPARK_REGULARIZATION`; several values make a sweep.
    """
    from training.cf_spark import DEFAULT_SPARK_REGULARIZATION
    from training.spark import session

    if quick:
        base_events = min(base_events, 5000)
        scales = tuple(s for s in scales if s <= 10) or (1,)
    eval_requests = eval_requests or (600 if quick else 2000)
    regs = spark_regularizations or (DEFAULT_SPARK_REGULARIZATION,)
    t = time.perf_counter()
    own = spark is None
    spark = spark or session("moodtune-bench-spark-cf")
    start_s = round(time.perf_counter() - t, 2)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="moodtune-bench-spark-cf-") as tmp:
            for sc in scales:
                rows.append(_one_scale(sc, base_events, seed, eval_requests, spark, regs,
                                       Path(tmp) / f"x{sc}"))
        master = spark.sparkContext.master
        version = spark.version
    finally:
        if own:
            spark.stop()
    return {"benchmark": "spark_cf", "quick": quick, "seed": seed, "base_events": base_events,
            "spark_regularizations": list(regs), "spark_master": master,
            "spark_version": version, "spark_session_start_seconds": start_s, "rows": rows}


def print_table(res: dict[str, Any]) -> None:
    """Markdown: one line per scale (and per Spark regParam when sweeping)."""
    print(f"\nSpark ALS vs implicit ALS, generator-mode data (seed {res['seed']}), Spark "
          f"{res['spark_version']} on {res['spark_master']} (session start "
          f"{res['spark_session_start_seconds']} s, not in the times below)\n")
    print("| scale | events | users | songs | hit@5 mood only | hit@5 implicit | regParam | "
          "hit@5 Spark | abs Δ hit@5 | implicit s | Spark export s | Spark train s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in res["rows"]:
        for reg, sp in r["spark"].items():
            print(f"| {r['scale']} | {r['events']:,} | {r['users']:,} | {r['songs']:,} | "
                  f"{r['hit@5']['mood only']:.4f} | {r['hit@5']['implicit']:.4f} | {reg} | "
                  f"{sp['hit@5']:.4f} | {sp['abs_delta_hit@5']:.4f} | {r['implicit_seconds']} | "
                  f"{r['spark_export_seconds']} | {sp['train_seconds']} |")
    print("\nimplicit s = train_from_db (store read + fit + write, 1 solver thread); Spark "
          "train s = train_spark on a warm session (read snapshot, aggregate, fit, collect, "
          "write); hit@5 on the same held-out requests (benchmarks.cf.evaluate).")


def main(argv: list[str] | None = None) -> int:
    from benchmarks import machine, write_results

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--scales", default="1,10,100")
    ap.add_argument("--base-events", type=int, default=BASE_EVENTS)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sweep", default=None, help="comma-separated Spark regParam values")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    regs = tuple(float(x) for x in args.sweep.split(",")) if args.sweep else None
    started = time.perf_counter()
    res = compare(tuple(int(x) for x in args.scales.split(",")), args.base_events, args.quick,
                  seed=args.seed, spark_regularizations=regs)
    res["seconds"] = round(time.perf_counter() - started, 1)
    res["machine"] = machine(load_avg_at_end=os.getloadavg())
    res["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print_table(res)
    write_results(args.out, res)
    print(f"\nresults written to {args.out} ({res['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
