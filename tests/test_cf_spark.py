"""training.cf_spark: Spark ALS learns the implicit trainer's model and writes the same artifact.

One session-scoped local Spark (the ``spark`` fixture); small ranks and few sweeps keep the
module well under a minute on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bot.store import Store
from indexing.catalog import Catalog
from indexing.cf import CFModel
from indexing.synthetic import synthetic_songs
from tests.spark_support import spark_submit
from training.cf import CFConfig, Events, NoFeedbackError, build_matrix, read_song_meta, train
from training.cf_spark import train_spark

pytestmark = [pytest.mark.slow, pytest.mark.spark]

T0 = 1_767_225_600.0
CONFIG = CFConfig(factors=8, iterations=10, seed=3)
SONGS = synthetic_songs(60, seed=3)
GENRES = sorted({s.genre for s in SONGS})
A_GENRES = set(GENRES[::2])  # group "a" likes these genres, group "b" the others


def _rows(n_users: int = 16, seed: int = 0) -> list[tuple]:
    """Users a*/b* love/like songs of their genres and skip/dislike the rest; each reacts to
    a random half of the catalogue, so every user has unobserved songs of both kinds."""
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    t = T0
    for g in ("a", "b"):
        for u in range(n_users // 2):
            for song in SONGS:
                if rng.random() > 0.5:
                    continue
                t += 60
                mine = (song.genre in A_GENRES) == (g == "a")
                sig = (("love", "like") if mine else ("dislike", "skip"))[int(rng.random() < 0.5)]
                scope = "message" if rng.random() < 0.2 else "track"
                rows.append((f"{g}{u}", song.song_id, sig, scope, t))
    # a like and a dislike that cancel: u "a0" has no net opinion on the last song
    last = SONGS[-1].song_id
    rows = [r for r in rows if not (r[0] == "a0" and r[1] == last)]
    rows += [("a0", last, "like", "track", t + 60), ("a0", last, "dislike", "track", t + 120)]
    return rows


def _parquet(rows: list[tuple], path: Path) -> Path:
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 5
    pq.write_table(pa.table({"user_id": pa.array(cols[0], pa.string()),
                             "song_id": pa.array(cols[1], pa.string()),
                             "signal": pa.array(cols[2], pa.string()),
                             "scope": pa.array(cols[3], pa.string()),
                             "created_at": pa.array(cols[4], pa.float64())}), path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, spark) -> dict:
    work = tmp_path_factory.mktemp("cfspark")
    catalog = work / "catalog.jsonl"
    Catalog(SONGS).save(catalog)
    meta = read_song_meta(catalog)
    rows = _rows()
    snap = _parquet(rows, work / "feedback.parquet")
    spark_summary = train_spark(snap, work / "cf_spark", CONFIG, song_meta=meta, spark=spark,
                                spark_regularization=0.1)
    events = Events.from_rows(rows)
    imp_summary = train(events, work / "cf_implicit", CONFIG, song_meta=meta)
    return {"work": work, "rows": rows, "meta": meta, "catalog": catalog, "snap": snap,
            "events": events, "spark": spark_summary, "implicit": imp_summary}


def _raw_scores(path: Path) -> tuple[dict[str, int], dict[str, int], np.ndarray]:
    ids = json.loads((path / "ids.json").read_text(encoding="utf-8"))
    uf = np.load(path / "user_factors.npy")
    itf = np.load(path / "item_factors.npy")
    return ({u: i for i, u in enumerate(ids["users"])},
            {s: i for i, s in enumerate(ids["items"])}, uf @ itf.T)


def test_artifact_loads_and_scores(world: dict) -> None:
    path = world["work"] / "cf_spark"
    info = json.loads((path / "cf.json").read_text(encoding="utf-8"))
    assert info["engine"] == "spark" and info["spark"]["master"].startswith("local")
    assert info["spark"]["version"]
    model = CFModel.load(path, min_events=1)
    ids = [s.song_id for s in SONGS[:10]]
    scores = model.scores("a1", ids)
    assert scores is not None and len(scores) == 10
    assert all(0.0 <= x <= 1.0 for x in scores.values())
    assert world["spark"]["sampled_train_auc"] > 0.8
    assert world["spark"]["users"] == world["implicit"]["users"]
    assert world["spark"]["songs"] == world["implicit"]["songs"]


def test_same_matrix_bookkeeping_as_implicit(world: dict) -> None:
    """Pairs, negatives and cancellations equal build_matrix's (weights and sums agree)."""
    tm = build_matrix(world["events"], CONFIG, song_meta=world["meta"])
    m = json.loads((world["work"] / "cf_spark" / "cf.json").read_text())["metrics"]
    for key in ("n_pairs", "n_negative_pairs", "n_cancelled_pairs", "n_side_items",
                "songs_with_metadata", "events_by_signal", "events_by_scope"):
        assert m[key] == tm.stats[key], key
    assert m["n_cancelled_pairs"] >= 1


def test_rankings_agree_and_negatives_rank_low(world: dict) -> None:
    """Both engines put a user's genres first among unobserved songs; a disliked song ranks
    below the unobserved ones and a loved one above (wrong signs or dropped negatives fail)."""
    seen: dict[str, dict[str, float]] = {}
    w = {"love": 4, "like": 2, "play": 0.5, "skip": -0.5, "dislike": -2}
    for u, s, sig, _scope, _t in world["rows"]:
        seen.setdefault(u, {}).setdefault(s, 0.0)
        seen[u][s] += w[sig]
    genre_hit: dict[str, list[float]] = {"spark": [], "implicit": []}
    overlap = []
    for name in ("spark", "implicit"):
        users, items, scores = _raw_scores(world["work"] / f"cf_{name}")
        for u, row in users.items():
            mine = A_GENRES if u.startswith("a") else set(GENRES) - A_GENRES
            unobserved = [s.song_id for s in SONGS if s.song_id not in seen[u]]
            sc = scores[row]
            top = sorted(unobserved, key=lambda x: -sc[items[x]])[:5]
            genre_hit[name].append(np.mean([world["meta"][x][1] in mine for x in top]))
            neg = [s for s, v in seen[u].items() if v <= -1]
            pos = [s for s, v in seen[u].items() if v >= 2]
            base = np.mean([sc[items[x]] for x in unobserved])
            assert np.mean([sc[items[x]] for x in neg]) < base, (name, u)
            assert np.mean([sc[items[x]] for x in pos]) > base, (name, u)
    for name, hits in genre_hit.items():
        assert np.mean(hits) >= 0.9, name
    assert abs(np.mean(genre_hit["spark"]) - np.mean(genre_hit["implicit"])) <= 0.1
    s_users, s_items, s_scores = _raw_scores(world["work"] / "cf_spark")
    i_users, i_items, i_scores = _raw_scores(world["work"] / "cf_implicit")
    for u in s_users:
        unobserved = [s.song_id for s in SONGS if s.song_id not in seen[u]]
        a = set(sorted(unobserved, key=lambda x: -s_scores[s_users[u]][s_items[x]])[:5])
        b = set(sorted(unobserved, key=lambda x: -i_scores[i_users[u]][i_items[x]])[:5])
        overlap.append(len(a & b) / 5)
    assert np.mean(overlap) >= 0.4


def test_empty_window_keeps_previous_artifact(world: dict, spark) -> None:
    path = world["work"] / "cf_spark"
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(NoFeedbackError):
        train_spark(world["snap"], path, CONFIG, spark=spark, since=T0 + 10**9)
    empty = _parquet([], world["work"] / "empty.parquet")
    with pytest.raises(NoFeedbackError):
        train_spark(empty, path, CONFIG, spark=spark)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


def test_cli_engine_spark_end_to_end(world: dict, tmp_path: Path, spark, capsys) -> None:
    from training import train_cf_cli

    db = tmp_path / "bot.sqlite3"

    async def create() -> None:
        await (await Store.open(db)).close()

    asyncio.run(create())
    con = sqlite3.connect(db)
    with con:
        con.executemany("INSERT INTO feedback (rec_id, song_id, user_id, signal, scope, "
                        "created_at) VALUES (NULL, ?, ?, ?, ?, ?)",
                        [(s, u, sig, scope, t) for u, s, sig, scope, t in world["rows"]])
    con.close()
    parser = argparse.ArgumentParser()
    train_cf_cli.configure(parser)
    out = tmp_path / "cf"
    args = parser.parse_args(["--engine", "spark", "--db", str(db), "--out", str(out),
                              "--catalog", str(world["catalog"]), "--factors", "8",
                              "--iterations", "5", "--json", "--no-progress"])
    assert train_cf_cli.run(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["engine"] == "spark" and summary["events"] == len(world["rows"])
    info = json.loads((out / "cf.json").read_text())
    assert info["engine"] == "spark" and info["data"]["source"]["database"] == str(db.resolve())
    assert CFModel.load(out, min_events=1).scores("b2", [SONGS[0].song_id]) is not None
    # an empty window: exit 1, the model just written is untouched
    before = (out / "cf.json").read_bytes()
    args = parser.parse_args(["--engine", "spark", "--db", str(db), "--out", str(out),
                              "--since", str(T0 + 10**9), "--no-progress"])
    assert train_cf_cli.run(args) == 1
    assert (out / "cf.json").read_bytes() == before


def test_spark_submit_recipe_runs_in_local_mode(world: dict, tmp_path: Path) -> None:
    """The README's cluster recipe, for real: ``spark-submit --py-files moodtune.zip
    deploy/spark_job.py train-cf --engine spark --snapshot …`` (a fresh JVM, master local[2]).

    It once failed at start: submitting ``training/cf_spark.py`` put ``training/`` first on
    ``sys.path``, where ``training/profile.py`` hid the standard ``profile`` pyspark imports.
    """
    out = tmp_path / "cf"
    done = spark_submit(["train-cf", "--engine", "spark", "--snapshot", str(world["snap"]),
                         "--out", str(out), "--catalog", str(world["catalog"]), "--factors", "8",
                         "--iterations", "10", "--json", "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["engine"] == "spark" and summary["users"] == world["spark"]["users"]
    assert CFModel.load(out, min_events=1).scores("a1", [SONGS[0].song_id]) is not None
