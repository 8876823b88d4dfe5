"""The Annoy song index: correctness against exact search, atomic builds, refusing bad indexes."""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import indexing.index as index_mod
from bot.cli import main as moodtune
from indexing.atomic import recover
from indexing.catalog import Catalog, Song
from indexing.index import (
    ExactSearch,
    IndexBuildError,
    IndexCorruptError,
    IndexDimensionError,
    IndexFingerprintError,
    IndexLoadError,
    IndexNotFoundError,
    SongIndex,
    UnknownSongError,
    build_index,
    cosine_from_angular,
)
from indexing.synthetic import mood_queries, synthetic_catalog
from inference.emotions import LABELS

N = 5000


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return synthetic_catalog(N, seed=1)


@pytest.fixture(scope="module")
def built(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_index(catalog, tmp_path_factory.mktemp("idx") / "index", model_fingerprint="fp-A")


@pytest.fixture(scope="module")
def index(built: Path) -> SongIndex:
    return SongIndex.load(built, expected_fingerprint="fp-A")


@pytest.fixture(scope="module")
def exact(catalog: Catalog) -> ExactSearch:
    return ExactSearch.from_catalog(catalog)


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built index that a test may damage."""
    return Path(shutil.copytree(built, tmp_path / "index"))


def _edit_info(path: Path, **changes: object) -> None:
    info = json.loads((path / "index.json").read_text(encoding="utf-8"))
    info.update(changes)
    (path / "index.json").write_text(json.dumps(info), encoding="utf-8")


def _small(n: int, prefix: str) -> Catalog:
    return Catalog(
        Song(f"{prefix}{i}", f"t{i}", "a", tuple(float(x) for x in v))
        for i, v in enumerate(np.random.default_rng(n).dirichlet(np.ones(6), n))
    )


# ---- search correctness ---------------------------------------------------------------------
def test_cosine_from_angular_edges() -> None:
    assert cosine_from_angular(0.0) == 1.0
    assert cosine_from_angular(math.sqrt(2.0)) == pytest.approx(0.0, abs=1e-12)
    assert cosine_from_angular(2.0) == -1.0
    assert cosine_from_angular(2.0000001) == -1.0  # float noise is clipped


def test_scores_are_cosine_and_sorted(index: SongIndex, catalog: Catalog) -> None:
    unit = catalog.vectors / np.linalg.norm(catalog.vectors, axis=1, keepdims=True)
    for q in mood_queries(20, seed=3):
        res = index.search(q * 7.5, 10)  # the scale of the query must not matter
        scores = [s for _, s in res]
        assert scores == sorted(scores, reverse=True)
        qn = q / np.linalg.norm(q)
        for song, score in res:
            assert score == pytest.approx(float(unit[catalog.position(song.song_id)] @ qn), abs=1e-5)


def test_recall_at_10_matches_exact(index: SongIndex, exact: ExactSearch) -> None:
    """Default settings must find (nearly) the true top 10; ties count as hits."""
    hits = total = 0
    for q in mood_queries(300, seed=11):
        truth = exact.search_rows(q, 10)
        floor = truth[-1][1] - 1e-6
        got = index.search_rows(q, 10)
        assert len(got) == 10
        hits += sum(1 for _, s in got if s >= floor)
        total += 10
    assert hits / total >= 0.99


def test_exclude_still_returns_k(index: SongIndex, exact: ExactSearch) -> None:
    q = mood_queries(1, seed=5)[0]
    first = [s.song_id for s, _ in index.search(q, 10)]
    res = index.search(q, 10, exclude=first)
    ids = [s.song_id for s, _ in res]
    assert len(ids) == 10 and not set(ids) & set(first)
    assert ids == [s.song_id for s, _ in exact.search(q, 10, exclude=first)]


def test_large_exclusion_widens_the_search(index: SongIndex, exact: ExactSearch) -> None:
    q = mood_queries(1, seed=6)[0]
    banned = [index.song_id_at(r) for r, _ in exact.search_rows(q, 800)]
    res = index.search(q, 10, exclude=tuple(banned))  # a tuple: converted to a set internally
    assert len(res) == 10
    assert not {s.song_id for s, _ in res} & set(banned)


def test_k_bigger_than_catalogue(tmp_path: Path) -> None:
    idx = SongIndex.load(build_index(_small(7, "s"), tmp_path / "i"))
    assert len(idx.search([1, 0, 0, 0, 0, 0], 50)) == 7
    assert len(idx.search([1, 0, 0, 0, 0, 0], 50, exclude={"s0", "s1"})) == 5
    assert idx.search([1, 0, 0, 0, 0, 0], 0) == []


def test_neighbours_excludes_self(index: SongIndex, catalog: Catalog) -> None:
    sid = catalog.songs[123].song_id
    res = index.neighbours(sid, 10)
    assert len(res) == 10
    assert sid not in {s.song_id for s, _ in res}
    other = res[0][0].song_id
    assert other not in {s.song_id for s, _ in index.neighbours(sid, 10, exclude=[other])}
    with pytest.raises(UnknownSongError, match="nope"):
        index.neighbours("nope", 5)


@pytest.mark.parametrize(
    "vec",
    [
        [0, 0, 0, 0, 0, 0],
        [float("nan"), 1, 0, 0, 0, 0],
        [float("inf"), 1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
        np.ones((2, 6)),
        "슬픔",
        [[1, 2], [3]],
    ],
    ids=["zero", "nan", "inf", "short", "two-rows", "string", "ragged"],
)
def test_bad_query_vectors(index: SongIndex, exact: ExactSearch, vec: object) -> None:
    with pytest.raises(ValueError, match="query vector"):
        index.search(vec, 5)
    with pytest.raises(ValueError, match="query vector"):
        exact.search(vec, 5)


def test_bad_k(index: SongIndex) -> None:
    with pytest.raises(ValueError, match="k must be"):
        index.search([1, 0, 0, 0, 0, 0], -1)
    assert len(index.search(np.ones((1, 6)), 3)) == 3  # a (1, 6) batch of one is accepted


def test_metadata_round_trip(index: SongIndex, catalog: Catalog) -> None:
    assert len(index) == N
    assert index.fingerprint == "fp-A"
    assert index.vectors.dtype == np.float32 and index.vectors.shape == (N, 6)
    np.testing.assert_array_equal(index.vectors, catalog.vectors)
    info = index.info
    assert info["count"] == N and info["dim"] == 6 and info["metric"] == "angular"
    assert info["labels"] == list(LABELS) and info["n_trees"] == 10
    for orig in (catalog.songs[0], catalog.songs[-1], *catalog.songs[1000:1020]):
        got = index.song(orig.song_id)
        for field in ("song_id", "title", "artist", "album", "genre", "year", "melon_id",
                      "source", "popularity"):
            assert getattr(got, field) == getattr(orig, field), field
        assert got.vector == pytest.approx(orig.vector, rel=1e-6)
    assert "nope" not in index and index.get("nope") is None
    with pytest.raises(KeyError):
        index.song("nope")


def test_optional_fields_and_extra_survive(tmp_path: Path) -> None:
    songs = [
        Song("a", "제목", "", (1, 0, 0, 0, 0, 0)),
        Song("b", "t", "가수", (0, 1, 0, 0, 0, 0), album="", genre="발라드", year=1999,
             melon_id="123", popularity=0.5, source="description", extra={"k": [1, "둘"]}),
    ]
    idx = SongIndex.load(build_index(Catalog(songs), tmp_path / "i"))
    a, b = idx.song("a"), idx.song("b")
    assert (a.album, a.genre, a.year, a.melon_id, a.extra) == (None, None, None, None, {})
    assert (b.album, b.genre, b.year, b.melon_id) == ("", "발라드", 1999, "123")
    assert b.extra == {"k": [1, "둘"]} and b.source == "description" and b.popularity == 0.5


def test_concurrent_searches_are_consistent(index: SongIndex) -> None:
    queries = mood_queries(60, seed=21)
    expected = [[s.song_id for s, _ in index.search(q, 10)] for q in queries]
    fresh = SongIndex.load(index.path)  # its id map is built lazily, under contention here
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(offset: int) -> None:
        try:
            barrier.wait()
            for j in range(len(queries)):
                i = (j + offset) % len(queries)
                assert [s.song_id for s, _ in fresh.search(queries[i], 10)] == expected[i]
                sid = expected[i][0]
                assert fresh.song(sid).song_id == sid
                assert sid not in {s.song_id for s, _ in fresh.neighbours(sid, 3)}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t * 7,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# ---- building -------------------------------------------------------------------------------
def test_empty_catalogue_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IndexBuildError, match="empty"):
        build_index(Catalog([]), tmp_path / "i")
    assert not (tmp_path / "i").exists()


def test_bad_n_trees(tmp_path: Path) -> None:
    with pytest.raises(IndexBuildError, match="n_trees"):
        build_index(_small(3, "x"), tmp_path / "i", n_trees=0)


def test_build_is_reproducible(tmp_path: Path) -> None:
    cat = _small(300, "r")
    a = SongIndex.load(build_index(cat, tmp_path / "a", seed=7)).info
    b = SongIndex.load(build_index(cat, tmp_path / "b", seed=7)).info
    assert a["files"]["songs.ann"]["sha256"] == b["files"]["songs.ann"]["sha256"]


def test_rebuild_replaces_and_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "index"
    build_index(_small(10, "old"), out)
    old = SongIndex.load(out)  # a reader still holding the old index keeps working
    build_index(_small(20, "new"), out)
    assert len(SongIndex.load(out)) == 20
    assert len(old.search([1, 1, 0, 0, 0, 0], 3)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.lock", "index"]


def test_failure_mid_build_keeps_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "index"
    build_index(_small(10, "old"), out)

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("simulated crash while writing metadata")

    monkeypatch.setattr(index_mod, "_write_metadata", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        build_index(_small(20, "new"), out)
    assert len(SongIndex.load(out)) == 10
    assert not list(tmp_path.glob(".index.tmp-*"))


def test_failure_during_swap_restores_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "index"
    build_index(_small(10, "old"), out)
    real_rename = os.rename

    def flaky_rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src).name.startswith(".index.tmp-"):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(index_mod.os, "rename", flaky_rename)
    with pytest.raises(IndexBuildError, match="No space"):
        build_index(_small(20, "new"), out)
    monkeypatch.undo()
    assert len(SongIndex.load(out)) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.lock", "index"]


def test_build_killed_between_renames_is_repaired(tmp_path: Path) -> None:
    out = tmp_path / "index"
    build_index(_small(10, "old"), out)
    os.rename(out, tmp_path / ".index.old-123-456")  # as if killed right after renaming away
    with pytest.raises(IndexNotFoundError):
        SongIndex.load(out)
    recover(out, "index")
    assert len(SongIndex.load(out)) == 10
    (tmp_path / ".index.tmp-zzz").mkdir()  # an abandoned temp dir is cleaned by the next build
    build_index(_small(5, "n"), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.lock", "index"]


# ---- refusing bad indexes -------------------------------------------------------------------
def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="moodtune index"):
        SongIndex.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFoundError, match=r"index\.json"):
        SongIndex.load(tmp_path / "empty")


def test_truncated_ann(copy: Path) -> None:
    ann = copy / "songs.ann"
    data = ann.read_bytes()
    ann.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match="truncated"):
        SongIndex.load(copy)


def test_corrupt_ann_same_size(copy: Path) -> None:
    ann = copy / "songs.ann"
    ann.write_bytes(b"\x00" * ann.stat().st_size)
    with pytest.raises(IndexLoadError, match="rebuild"):
        SongIndex.load(copy, verify_checksum=True)


def test_garbage_ann_that_annoy_rejects(copy: Path) -> None:
    (copy / "songs.ann").write_bytes(b"garbage!" * 11 + b"x")
    _edit_info(copy, files={"songs.ann": {"size": 89}})
    with pytest.raises(IndexCorruptError, match="Annoy cannot open"):
        SongIndex.load(copy)


def test_wrong_dim_and_labels(copy: Path) -> None:
    _edit_info(copy, dim=7)
    with pytest.raises(IndexDimensionError, match="7-d"):
        SongIndex.load(copy)
    _edit_info(copy, dim=6, labels=list(reversed(LABELS)))
    with pytest.raises(IndexDimensionError, match="emotion order"):
        SongIndex.load(copy)


def test_count_mismatch_between_ann_and_info(copy: Path) -> None:
    _edit_info(copy, count=N + 1)
    with pytest.raises(IndexCorruptError, match="songs"):
        SongIndex.load(copy)


def test_count_mismatch_between_ann_and_metadata(copy: Path, tmp_path: Path) -> None:
    other = build_index(_small(10, "o"), tmp_path / "other")
    shutil.copy(other / "songs.meta.npz", copy / "songs.meta.npz")
    with pytest.raises(IndexCorruptError, match="rows"):
        SongIndex.load(copy)
    shutil.copy(other / "songs.vectors.npy", copy / "songs.vectors.npy")
    with pytest.raises(IndexCorruptError, match="expected float32"):
        SongIndex.load(copy)


def test_unreadable_info_and_metadata(copy: Path) -> None:
    (copy / "songs.meta.npz").write_bytes(b"not a zip")
    with pytest.raises(IndexCorruptError, match=r"songs\.meta\.npz"):
        SongIndex.load(copy)
    (copy / "index.json").write_text("{", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match=r"index\.json"):
        SongIndex.load(copy)


def test_fingerprint_mismatch(built: Path) -> None:
    with pytest.raises(IndexFingerprintError, match="fp-A") as err:
        SongIndex.load(built, expected_fingerprint="fp-B")
    assert "moodtune index" in str(err.value)
    assert isinstance(err.value, IndexLoadError)
    assert SongIndex.load(built).fingerprint == "fp-A"  # no expectation: accepted


# ---- exact search and CLI -------------------------------------------------------------------
def test_exact_search_from_index_matches_catalog(index: SongIndex, exact: ExactSearch) -> None:
    q = mood_queries(1, seed=9)[0]
    from_index = ExactSearch.from_index(index)
    assert [s.song_id for s, _ in from_index.search(q, 5)] == [
        s.song_id for s, _ in exact.search(q, 5)
    ]
    assert exact.search(q, 0) == []


def test_index_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat_path = tmp_path / "catalog.jsonl"
    synthetic_catalog(200, seed=3).save(cat_path)
    out = tmp_path / "idx"
    rc = moodtune(["index", "--catalog", str(cat_path), "--out", str(out), "--n-trees", "5",
                   "--fingerprint", "fp-X", "--no-progress"])
    assert rc == 0
    assert "200 songs" in capsys.readouterr().out
    idx = SongIndex.load(out, expected_fingerprint="fp-X")
    assert len(idx) == 200 and idx.n_trees == 5


def test_index_command_bad_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "catalog.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    assert moodtune(["index", "--catalog", str(bad), "--out", str(tmp_path / "i")]) == 1
    assert "not JSON" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert moodtune(["index", "--catalog", str(empty), "--out", str(tmp_path / "i")]) == 1
    assert "empty" in capsys.readouterr().err


def test_a_season_filter_matches_songs_titled_for_it(tmp_path: Path) -> None:
    """"봄 노래" means songs titled for spring (벚꽃 엔딩, 봄날): read from the title column, a
    fact, with no annotation behind it; other seasons and untitled songs do not match."""
    from indexing.facets import seasons_in_title
    from indexing.index import SongFilter

    assert seasons_in_title("벚꽃 엔딩") == ("봄",) and seasons_in_title("눈의 꽃") == ("겨울",)
    assert seasons_in_title("사랑은 봄비처럼...이별은 겨울비처럼") == ("봄", "겨울")
    assert seasons_in_title("When The Love Falls") == () and seasons_in_title("") == ()
    titles = ["벚꽃 엔딩", "여름 안에서", "눈의 꽃", "밤편지", "Spring Day", "봄날"]
    songs = [Song(song_id=f"s{i}", title=t, artist=f"a{i}",
                  vector=tuple(np.eye(6)[i % 6] * 0.9 + 0.02)) for i, t in enumerate(titles)]
    idx = SongIndex.load(build_index(Catalog(songs), tmp_path / "i"))
    try:
        spring = idx.search_filtered(np.eye(6)[0], 10, SongFilter(seasons=("봄",)))
        assert sorted(s.title for s, _ in spring) == ["Spring Day", "벚꽃 엔딩", "봄날"]
        assert [s.title for s, _ in idx.search_filtered(np.eye(6)[0], 10,
                                                        SongFilter(seasons=("겨울",)))] == ["눈의 꽃"]
        assert bool(SongFilter(seasons=("봄",))) and not SongFilter()
    finally:
        idx.close()


def test_refused_genres_are_filtered_out(tmp_path: Path) -> None:
    from indexing.index import SongFilter

    songs = [Song(song_id=f"s{i}", title=f"t{i}", artist=f"a{i}", genre=g,
                  vector=tuple(np.eye(6)[i % 6] * 0.9 + 0.02))
             for i, g in enumerate(["발라드", "댄스", "발라드", "록/메탈"])]
    idx = SongIndex.load(build_index(Catalog(songs), tmp_path / "i"))
    try:
        got = idx.search_filtered(np.eye(6)[0], 10, SongFilter(exclude_genres=("발라드",)))
        assert sorted(s.genre for s, _ in got) == ["댄스", "록/메탈"]
        assert bool(SongFilter(exclude_genres=("발라드",)))
    finally:
        idx.close()
