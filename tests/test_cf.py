"""Collaborative filtering: event weighting, training, the artifact, cold start, hot reload,
/retrain, the train-cf CLI and the feedback simulator."""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.engine import CFRetrainError, Recommender
from bot.feedback import Signal
from bot.store import Store
from indexing.catalog import Catalog
from indexing.cf import CFLoadError, CFModel, CFNotFoundError, CFSaveError, save_cf
from tests.fakes import KeywordClassifier
from training.cf import (
    SCOPE_WEIGHTS,
    SIGNAL_WEIGHTS,
    CFConfig,
    Events,
    NoFeedbackError,
    build_matrix,
    event_weights,
    train,
    train_from_db,
)
from training.simulate import SimClock, SimConfig, TasteModel, generate_log, simulate_engine

REPO = Path(__file__).resolve().parent.parent
T0 = 1_767_225_600.0  # 2026-01-01 UTC
DAY = 86_400.0


def _two_taste_rows(n_users: int = 24, n_songs: int = 40, *, seed: int = 0,
                    extra: list[tuple] | None = None) -> list[tuple]:
    """Users "a*" love songs "a*" and skip/dislike songs "b*"; users "b*" the opposite.

    Each user reacts to a random 60 % of songs, so every song is seen by several people of
    both groups — the structure ALS must recover.
    """
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    t = T0
    for g in ("a", "b"):
        for u in range(n_users // 2):
            for side in ("a", "b"):
                for s in range(n_songs // 2):
                    if rng.random() > 0.6:
                        continue
                    t += 60
                    if side == g:
                        sig = "love" if rng.random() < 0.5 else "like"
                    else:
                        sig = "dislike" if rng.random() < 0.5 else "skip"
                    rows.append((f"{g}-user{u}", f"{side}-song{s}", sig, "track", t))
    return rows + (extra or [])


def _train_rows(rows: list[tuple], out: Path, **cfg: float) -> dict:
    config = CFConfig(**{"factors": 8, "regularization": 0.1, "iterations": 10, **cfg})
    return train(Events.from_rows(rows), out, config)


# ---- weighting --------------------------------------------------------------------------------
def test_signal_weights_cover_every_signal_with_the_right_signs():
    assert set(SIGNAL_WEIGHTS) == {s.value for s in Signal}
    w = SIGNAL_WEIGHTS
    assert w["love"] > w["like"] > w["play"] > 0
    assert w["dislike"] < w["skip"] < 0  # negatives are explicit, not dropped
    assert SCOPE_WEIGHTS["track"] > SCOPE_WEIGHTS["message"] > 0
    with pytest.raises(ValueError, match="negative"):
        CFConfig(signal_weights={**SIGNAL_WEIGHTS, "dislike": 0.0})


def test_message_scope_and_age_weigh_less():
    ev = Events.from_rows([
        ("u", "s1", "like", "track", T0 + 10 * DAY),
        ("u", "s2", "like", "message", T0 + 10 * DAY),
        ("u", "s3", "like", "track", T0),  # ten days older
        ("u", "s4", "dislike", "message", T0 + 10 * DAY),
    ])
    w = event_weights(ev, CFConfig())
    assert w[0] == pytest.approx(SIGNAL_WEIGHTS["like"])
    assert w[1] == pytest.approx(SIGNAL_WEIGHTS["like"] * SCOPE_WEIGHTS["message"])
    assert w[2] == w[0]  # no decay by default
    assert w[3] == pytest.approx(SIGNAL_WEIGHTS["dislike"] * SCOPE_WEIGHTS["message"])
    decayed = event_weights(ev, CFConfig(half_life_days=10))
    assert decayed[0] == pytest.approx(w[0])
    assert decayed[2] == pytest.approx(w[0] / 2)


def test_unknown_signals_are_counted_and_skipped():
    ev = Events.from_rows([("u", "s", "like", "track", T0), ("u", "s", "meh", "track", T0),
                           ("u", "s", "like", "channel", T0)])
    assert len(ev) == 1 and ev.skipped == 2


def test_matrix_confidences_negatives_and_cancellation():
    cfg = CFConfig(side_weight=0.0)
    rows = [
        ("u1", "liked", "like", "track", T0),
        ("u1", "hated", "dislike", "track", T0),
        ("u1", "mixed", "like", "track", T0),  # like + skip = +1.5
        ("u1", "mixed", "skip", "track", T0 + 1),
        ("u1", "undecided", "like", "track", T0),  # like + dislike cancel exactly
        ("u1", "undecided", "dislike", "track", T0 + 1),
        ("u2", "liked", "love", "message", T0),
    ]
    tm = build_matrix(Events.from_rows(rows), cfg)
    m = tm.matrix.toarray()
    col = {s: j for j, s in enumerate(tm.item_ids)}
    row = {u: i for i, u in enumerate(tm.user_ids)}
    a = cfg.alpha
    assert m[row["u1"], col["liked"]] == pytest.approx(1 + a * 2.0)
    assert m[row["u1"], col["hated"]] == pytest.approx(-(1 + a * 2.0))  # p=0, high confidence
    assert m[row["u1"], col["mixed"]] == pytest.approx(1 + a * 1.5)
    assert m[row["u1"], col["undecided"]] == 0  # cancelled: left unobserved
    assert m[row["u2"], col["liked"]] == pytest.approx(1 + a * 4.0 * SCOPE_WEIGHTS["message"])
    assert tm.stats["n_negative_pairs"] == 1 and tm.stats["n_cancelled_pairs"] == 1
    assert list(tm.user_events[[row["u1"], row["u2"]]]) == [6, 1]


def test_side_items_share_artist_and_genre_evidence():
    rows = [("u", "s1", "like", "track", T0), ("u", "s2", "dislike", "track", T0)]
    meta = {"s1": ("artist a", "발라드"), "s2": ("artist a", "댄스")}
    tm = build_matrix(Events.from_rows(rows), CFConfig(side_weight=1.0), song_meta=meta)
    m = tm.matrix.toarray()[0]
    assert m.shape == (2 + 1 + 2,)  # 2 songs, 1 artist, 2 genres
    assert m[tm.song_artist[0]] == 0  # like + dislike of one artist cancel
    assert m[tm.song_genre[0]] > 0 > m[tm.song_genre[1]]
    assert tm.stats["songs_with_metadata"] == 2


def test_empty_or_cancelled_feedback_is_refused(tmp_path):
    with pytest.raises(NoFeedbackError):
        train(Events.from_rows([]), tmp_path / "cf")
    cancelled = [("u", "s", "like", "track", T0), ("u", "s", "dislike", "track", T0)]
    with pytest.raises(NoFeedbackError, match="cancel"):
        train(Events.from_rows(cancelled), tmp_path / "cf", CFConfig(side_weight=0))
    assert not (tmp_path / "cf").exists()


# ---- training quality and scoring -------------------------------------------------------------
def test_training_learns_group_tastes(tmp_path):
    rows = _two_taste_rows()
    _train_rows(rows, tmp_path / "cf")
    model = CFModel.load(tmp_path / "cf", min_events=5)
    songs = [f"a-song{i}" for i in range(20)] + [f"b-song{i}" for i in range(20)]
    a = model.scores("a-user0", songs)
    b = model.scores("b-user0", songs)
    assert a is not None and b is not None
    assert all(0.0 <= v <= 1.0 for v in [*a.values(), *b.values()])
    mean = lambda d, p: np.mean([v for k, v in d.items() if k.startswith(p)])  # noqa: E731
    assert mean(a, "a-") > mean(a, "b-") + 0.2
    assert mean(b, "b-") > mean(b, "a-") + 0.2
    assert model.info["metrics"]["sampled_train_auc"] > 0.8


def test_a_dislike_pushes_a_song_below_unseen(tmp_path):
    """A dislike is a firmer "no" than never having seen the song (negative confidence)."""
    base = _two_taste_rows()
    probe = "a-song3"
    base = [r for r in base if not (r[0] == "a-user1" and r[1] == probe)]
    _train_rows(base, tmp_path / "without")
    _train_rows([*base, ("a-user1", probe, "dislike", "track", T0 + 9 * DAY)], tmp_path / "with")
    without = CFModel.load(tmp_path / "without", min_events=0).raw_scores("a-user1", [probe])
    with_ = CFModel.load(tmp_path / "with", min_events=0).raw_scores("a-user1", [probe])
    assert with_[probe] < without[probe] - 0.1


def test_cold_users_get_none_and_unseen_songs_are_omitted(tmp_path):
    rows = _two_taste_rows(extra=[("newbie", "a-song0", "like", "track", T0 + DAY),
                                  ("newbie", "a-song1", "like", "track", T0 + DAY)])
    _train_rows(rows, tmp_path / "cf")
    model = CFModel.load(tmp_path / "cf", min_events=5)
    assert model.events_of("newbie") == 2
    assert model.scores("newbie", ["a-song0"]) is None  # below CF_MIN_EVENTS
    assert model.scores("stranger", ["a-song0"]) is None
    got = model.scores("a-user0", ["a-song0", "brand-new-song", "b-song0"])
    assert set(got) == {"a-song0", "b-song0"}  # the new song is omitted → rerank gives the mean
    assert model.scores("a-user0", ["brand-new-song"]) == {}
    assert CFModel.load(tmp_path / "cf", min_events=2).scores("newbie", ["a-song0"])


# ---- the artifact -----------------------------------------------------------------------------
def _small_artifact(path: Path, **info) -> Path:
    rng = np.random.default_rng(1)
    return save_cf(path, user_ids=["u1", "u2", "u3"], item_ids=["s1", "s2"],
                   user_factors=rng.standard_normal((3, 4)),
                   item_factors=rng.standard_normal((2, 4)),
                   user_events=np.array([10, 1, 7]), info={"note": "test", **info})


def test_artifact_round_trip(tmp_path):
    summary = _train_rows(_two_taste_rows(), tmp_path / "cf")
    model = CFModel.load(tmp_path / "cf", min_events=5)
    info = json.loads((tmp_path / "cf" / "cf.json").read_text())
    assert info["format"] == "moodtune-cf" and info["format_version"] == 1
    assert info["model_id"] == summary["model_id"] == model.model_id
    assert info["n_users"] == summary["users"] == model.n_users == 24
    assert info["n_items"] == summary["songs"] == model.n_items == 40
    assert info["n_events"] == summary["events"]
    assert info["hyper_parameters"]["factors"] == 8
    assert info["hyper_parameters"]["signal_weights"] == SIGNAL_WEIGHTS
    assert info["data"]["first_event_at"] <= info["data"]["last_event_at"]
    assert info["trained_at"] and info["metrics"]["fit_seconds"] >= 0
    assert set(info["files"]) == {"user_factors.npy", "item_factors.npy", "user_events.npy",
                                  "ids.json"}

    p = _small_artifact(tmp_path / "small")
    m = CFModel.load(p, min_events=0)
    assert m.raw_scores("u1", ["s2"]) is not None
    uf = np.load(p / "user_factors.npy")
    itf = np.load(p / "item_factors.npy")
    assert m.raw_scores("u3", ["s1"])["s1"] == pytest.approx(float(uf[2] @ itf[0]), rel=1e-5)


def test_save_replaces_atomically_and_failed_save_keeps_the_old(tmp_path):
    p = _small_artifact(tmp_path / "cf", note="first")
    first = CFModel.load(p).model_id
    with pytest.raises(CFSaveError, match="NaN"):
        save_cf(p, user_ids=["u"], item_ids=["s"], user_factors=np.full((1, 2), np.nan),
                item_factors=np.ones((1, 2)), user_events=np.array([3]), info={})
    with pytest.raises(CFSaveError):
        save_cf(p, user_ids=["u", "u"], item_ids=["s"], user_factors=np.ones((2, 2)),
                item_factors=np.ones((1, 2)), user_events=np.array([3, 3]), info={})
    assert CFModel.load(p).model_id == first
    assert json.loads((p / "cf.json").read_text())["note"] == "first"
    _small_artifact(p, note="second")
    assert json.loads((p / "cf.json").read_text())["note"] == "second"
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".cf.") and q.is_dir()]


def _rewrite_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage, match", [
    (lambda p: (p / "cf.json").unlink(), "cf.json is missing"),
    (lambda p: (p / "cf.json").write_text("{not json"), "unreadable"),
    (lambda p: _rewrite_json(p / "cf.json", lambda d: d.update(format_version=99)),
     "format version 99"),
    (lambda p: _rewrite_json(p / "cf.json", lambda d: d.update(format="other")), "not a moodtune"),
    (lambda p: (p / "item_factors.npy").write_bytes(b"\x93NUMPY garbage"), "bytes"),
    (lambda p: (p / "user_factors.npy").unlink(), "missing"),
    (lambda p: (p / "ids.json").write_text((p / "ids.json").read_text().replace("s1", "x1")),
     "checksum"),
    (lambda p: _rewrite_json(p / "cf.json", lambda d: d.update(n_users=5)), "shape"),
])
def test_corrupt_artifacts_raise_cf_load_error(tmp_path, damage, match):
    p = _small_artifact(tmp_path / "cf")
    damage(p)
    with pytest.raises(CFLoadError, match=match):
        CFModel.load(p)


def test_missing_artifact_is_not_found(tmp_path):
    with pytest.raises(CFNotFoundError, match="train-cf"):
        CFModel.load(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CFLoadError, match="not a CF model directory"):
        CFModel.load(tmp_path / "file")


def test_serving_loader_needs_no_implicit_or_scipy_and_training_only_the_store_of_bot():
    """Training reads feedback through its one owner (bot.store, bot.feedback) and nothing
    else of bot: no engine, no adapters."""
    code = ("import sys, indexing.cf; "
            "bad = {'implicit', 'scipy', 'torch', 'bot'} & {m.split('.')[0] for m in sys.modules}; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    for rel in ("training/cf.py", "training/train_cf_cli.py", "training/simulate.py", "indexing/cf.py"):
        tree = ast.parse((REPO / rel).read_text(encoding="utf-8"))
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        allowed = {"bot.store", "bot.feedback"} if rel.startswith("training/") else set()
        assert not {m for m in mods if (m == "bot" or m.startswith("bot.")) and m not in allowed
                    }, rel
        if rel.startswith("indexing/"):
            assert not {m for m in mods if m.split(".")[0] in {"training", "scipy", "implicit"}}


# ---- engine: hot reload, /retrain ---------------------------------------------------------------
async def _fill_store(store: Store, rows: list[tuple], clock: SimClock) -> None:
    """Store ``rows`` as real recommendations + feedback (one answer per row)."""
    for i, (user, song, sig, scope, t) in enumerate(rows):
        clock.now = t
        await store.save_recommendation(f"r{i}", user, "console", [1 / 6] * 6, [(song, 0.5)],
                                        source="explicit")
        await store.add_feedback(f"r{i}", song, user, sig, scope=scope)


@pytest.fixture
async def engine(settings):
    clock = SimClock(T0)
    store = await Store.open(settings.resolved_database_path, clock=clock)
    rec = await Recommender.open(settings, classifier=KeywordClassifier(), store=store)
    rec.clock = clock  # the tests' handle on the store's clock
    yield rec
    await rec.close()


def _catalog_rows(settings, n_users: int = 16) -> list[tuple]:
    """Two taste groups over the test catalogue's songs (by genre family)."""
    songs = Catalog.load(settings.catalog_path).songs
    ballad = [s.song_id for s in songs if s.genre in ("발라드", "R&B/Soul", "인디음악")][:30]
    loud = [s.song_id for s in songs if s.genre in ("댄스", "랩/힙합", "록/메탈")][:30]
    rows, t = [], T0
    for u in range(n_users):
        likes, hates = (ballad, loud) if u % 2 == 0 else (loud, ballad)
        for s in likes[u % 3::3]:
            t += 30
            rows.append((f"user{u}", s, "like", "track", t))
        for s in hates[u % 4::4]:
            t += 30
            rows.append((f"user{u}", s, "dislike", "track", t))
    return rows


async def test_reload_cf_keeps_the_old_model_when_the_new_one_is_broken(engine, tmp_path):
    assert engine.cf is None
    assert await engine.reload_cf() is False  # nothing trained yet: not an error
    _small_artifact(engine.settings.resolved_cf_path)
    assert await engine.reload_cf() is True
    good = engine.cf
    (engine.settings.resolved_cf_path / "item_factors.npy").write_bytes(b"broken")
    with pytest.raises(CFLoadError):
        await engine.reload_cf()
    assert engine.cf is good
    assert await engine.reload_cf(quiet=True) is False
    assert engine.cf is good


async def test_hot_reload_under_concurrent_recommendations(engine, settings, tmp_path):
    rows = _catalog_rows(settings)
    cfg = CFConfig(factors=8, iterations=5, regularization=0.1)
    train(Events.from_rows(rows), tmp_path / "a", cfg)
    train(Events.from_rows(rows[: len(rows) // 2]), tmp_path / "b", cfg)
    target = settings.resolved_cf_path
    failures: list[BaseException] = []
    served = 0
    stop = asyncio.Event()

    async def user(i: int) -> None:
        nonlocal served
        while not stop.is_set():
            try:
                rec = await engine.recommend_mood(f"user{i}", ["슬픔", "기쁨", "평화"][i % 3])
                assert len(rec.tracks) == 5
                served += 1
            except BaseException as exc:
                failures.append(exc)
                return

    tasks = [asyncio.create_task(user(i)) for i in range(8)]
    seen = set()
    for k in range(10):
        src = tmp_path / ("a" if k % 2 == 0 else "b")
        save_cf(target, user_ids=json.loads((src / "ids.json").read_text())["users"],
                item_ids=json.loads((src / "ids.json").read_text())["items"],
                user_factors=np.load(src / "user_factors.npy"),
                item_factors=np.load(src / "item_factors.npy"),
                user_events=np.load(src / "user_events.npy"), info={"round": k})
        assert await engine.reload_cf() is True
        seen.add(engine.cf.info["round"])
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(*tasks)
    assert failures == []
    assert served >= 20 and seen == set(range(10))
    assert engine.cf.scores("user0", [rows[0][1]]) is not None  # warm user, CF in use


async def test_cf_reranks_warm_users_and_leaves_cold_users_alone(engine, settings):
    engine.settings.no_repeat_last = 0  # same candidates before and after: only CF differs
    before_warm = await engine.recommend_mood("user1", "기쁨")
    before_cold = await engine.recommend_mood("nobody", "기쁨")
    train(Events.from_rows(_catalog_rows(settings)), settings.resolved_cf_path,
          CFConfig(factors=8, iterations=10, regularization=0.1))
    assert await engine.reload_cf()
    after_warm = await engine.recommend_mood("user1", "기쁨")
    after_cold = await engine.recommend_mood("nobody", "기쁨")
    assert [(t.song_id, t.score) for t in after_cold.tracks] == \
        [(t.song_id, t.score) for t in before_cold.tracks]  # cold: mood + popularity only
    assert [(t.song_id, t.score) for t in after_warm.tracks] != \
        [(t.song_id, t.score) for t in before_warm.tracks]  # warm: the CF term is added
    scores = engine.cf.scores("user1", [t.song_id for t in after_warm.tracks])
    assert scores and all(0 <= v <= 1 for v in scores.values())


async def test_retrain_cf_refuses_without_a_file_store(settings):
    rec = await Recommender.open(settings, classifier=KeywordClassifier(), use_store=False)
    try:
        with pytest.raises(CFRetrainError, match="store is not configured"):
            await rec.retrain_cf()
    finally:
        await rec.close()
    mem = await Store.open(":memory:")
    rec = await Recommender.open(settings, classifier=KeywordClassifier(), store=mem)
    try:
        with pytest.raises(CFRetrainError, match="in memory"):
            await rec.retrain_cf()
    finally:
        await rec.close()


async def test_retrain_cf_with_no_feedback_fails_and_keeps_the_old_model(engine):
    _small_artifact(engine.settings.resolved_cf_path, note="old")
    assert await engine.reload_cf()
    old = engine.cf
    with pytest.raises(CFRetrainError, match="no feedback events"):
        await engine.retrain_cf()
    assert engine.cf is old
    info = json.loads((engine.settings.resolved_cf_path / "cf.json").read_text())
    assert info["note"] == "old"


async def test_retrain_cf_trains_in_a_worker_and_hot_swaps(engine, settings):
    await _fill_store(engine.store, _catalog_rows(settings), engine.clock)
    stop = asyncio.Event()
    answered = 0

    async def keep_chatting() -> None:
        nonlocal answered
        while not stop.is_set():
            await engine.recommend_mood("someone", "슬픔")
            answered += 1
            await asyncio.sleep(0.01)

    chat = asyncio.create_task(keep_chatting())
    try:
        result = await engine.retrain_cf(timeout=120)
    finally:
        stop.set()
        await chat
    assert result["users"] == 16 and result["events"] == len(_catalog_rows(settings))
    assert result["model"] == engine.cf.model_id
    assert answered > 0  # requests were answered while the worker trained
    assert engine.cf.scores("user0", [_catalog_rows(settings)[0][1]]) is not None
    info = json.loads((settings.resolved_cf_path / "cf.json").read_text())
    assert info["metrics"]["songs_with_metadata"] == info["n_items"]  # catalogue was read


# ---- the CLI ------------------------------------------------------------------------------------
async def test_train_cf_cli_on_a_small_store(tmp_path, settings, capsys):
    from bot.cli import main

    db = tmp_path / "bot.sqlite3"
    clock = SimClock(T0)
    store = await Store.open(db, clock=clock)
    rows = _catalog_rows(settings, n_users=6)
    await _fill_store(store, rows, clock)
    await store.close()
    out = tmp_path / "cf"
    until = rows[len(rows) // 2][4]
    args = ["train-cf", "--db", str(db), "--out", str(out), "--catalog",
            str(settings.catalog_path), "--factors", "4", "--iterations", "3", "--until",
            str(until), "--json", "--no-progress"]
    assert await asyncio.to_thread(main, args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events"] == len(rows) // 2
    info = json.loads((out / "cf.json").read_text())
    assert info["data"]["until"] == until and info["data"]["last_event_at"] < until
    assert CFModel.load(out, min_events=1).n_users == summary["users"]

    # an empty window: exit 1, clear message, the model above untouched
    empty = ["train-cf", "--db", str(db), "--out", str(out), "--until", "2000-01-01",
             "--no-progress"]
    assert await asyncio.to_thread(main, empty) == 1
    err = capsys.readouterr().err
    assert "no feedback events" in err and "unchanged" in err
    assert json.loads((out / "cf.json").read_text())["model_id"] == info["model_id"]

    assert main(["train-cf", "--db", str(tmp_path / "none.sqlite3"), "--out", str(out),
                 "--no-progress"]) == 1
    assert "no database" in capsys.readouterr().err
    assert main(["train-cf", "--db", str(db), "--since", "5", "--until", "4"]) == 2


def test_train_from_db_without_a_readable_catalogue_still_trains(tmp_path):
    import sqlite3

    db = tmp_path / "db.sqlite3"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE feedback (user_id TEXT, song_id TEXT, signal TEXT, scope TEXT, "
                "created_at REAL)")
    con.executemany("INSERT INTO feedback VALUES (?, ?, ?, ?, ?)", _two_taste_rows())
    con.commit()
    con.close()
    summary = train_from_db(db, tmp_path / "cf", CFConfig(factors=4, iterations=3),
                            catalog_path=tmp_path / "missing.jsonl")
    assert "trained without artist/genre" in summary["warning"]
    assert summary["songs_with_metadata"] == 0 and CFModel.load(tmp_path / "cf").n_items == 40


# ---- the simulator ------------------------------------------------------------------------------
def test_generator_mode_is_seeded_and_shaped_like_feedback(settings):
    songs = Catalog.load(settings.catalog_path).songs
    taste = TasteModel.create(songs, SimConfig(n_users=200, days=20, seed=3))
    log = generate_log(taste, 5000, n_queries=200, seed=3)
    again = generate_log(TasteModel.create(songs, SimConfig(n_users=200, days=20, seed=3)), 5000,
                         n_queries=200, seed=3)
    assert np.array_equal(log.song, again.song) and np.array_equal(log.signal, again.signal)
    assert 4000 < len(log) < 6000
    share = np.bincount(log.signal, minlength=5) / len(log)
    assert (share > 0.05).all()  # every signal occurs
    assert 0.05 < (log.scope == 1).mean() < 0.5
    silent = np.flatnonzero(taste.react_rate == 0)
    assert len(silent) > 20 and not np.isin(log.user, silent).any()
    assert (np.diff(log.time) >= 0).all()
    assert log.time.min() >= taste.config.start
    assert log.time.max() < taste.config.start + 21 * DAY
    # every shown song is one of its request's candidates
    cands = log.candidates[log.req_query]
    assert all(np.isin(log.req_shown[i], cands[i]).all() for i in range(0, len(cands), 97))
    pos = log.signal <= 2
    u = taste.utility(log.user.astype(np.int64), log.song[:, None],
                      log.queries[log.req_query[log.request]])[:, 0]
    assert u[pos].mean() > u[~pos].mean() + 0.5  # reactions follow the hidden taste


async def test_engine_mode_reacts_through_the_real_engine(engine, settings):
    songs = Catalog.load(settings.catalog_path).songs
    taste = TasteModel.create(songs, SimConfig(n_users=25, days=4, seed=5,
                                               requests_per_day=1.5))
    report = await simulate_engine(engine, taste, engine.clock, days=range(4), seed=5)
    assert report.requests > 20 and report.events > 20
    events = await engine.store.feedback_events()
    assert len(events) == report.events
    assert {e[3] for e in events} <= {"track", "message"}
    times = [e[4] for e in events]
    assert min(times) >= T0 and max(times) < T0 + 4 * DAY + 3600  # the store used the sim clock
    silent = {taste.user_ids[i] for i in np.flatnonzero(taste.react_rate == 0)}
    assert not silent & {e[0] for e in events}
