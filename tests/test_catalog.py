"""The catalogue (JSON Lines source of truth), the synthetic generator and ``moodtune catalog``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main as moodtune
from indexing.catalog import Catalog, CatalogError, Song
from indexing.catalog_cli import find_duplicates, normalise
from indexing.synthetic import mood_queries, synthetic_catalog, synthetic_songs
from inference.emotions import LABELS

GOOD = {"song_id": "1", "title": "봄날", "artist": "방탄소년단", "vector": [0, 0, 0.5, 0.2, 0.3, 0]}


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- Catalog ---------------------------------------------------------------------------------
def test_round_trip(tmp_path: Path) -> None:
    songs = [
        *synthetic_songs(50, seed=2),
        Song("x", "제목 (Feat. 누구)", "가수", (0.1, 0.2, 0.3, 0.4, 0.5, 0.6), album=None,
             year=None, extra={"lyrics_lang": "ko", "n": 3}),
    ]
    path = tmp_path / "sub" / "catalog.jsonl"
    Catalog(songs).save(path)
    assert [p.name for p in path.parent.iterdir()] == ["catalog.jsonl"]  # no temp file left
    back = Catalog.load(path)
    assert len(back) == len(songs)
    for a, b in zip(songs, back, strict=True):
        assert (a.song_id, a.title, a.artist, a.album, a.genre, a.year, a.melon_id, a.source,
                a.popularity, a.extra) == (b.song_id, b.title, b.artist, b.album, b.genre, b.year,
                                           b.melon_id, b.source, b.popularity, b.extra)
        assert b.vector == pytest.approx(a.vector, abs=1e-6)  # saved rounded to 6 decimals
    assert back.get("x") is not None and "x" in back and back.position("x") == len(songs) - 1
    assert back.vectors.shape == (len(songs), 6) and back.vectors.dtype == np.float32


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.jsonl", "", json.dumps(GOOD, ensure_ascii=False), "   ")
    assert [s.song_id for s in Catalog.load(path)] == ["1"]


def test_duplicate_ids(tmp_path: Path) -> None:
    line = json.dumps(GOOD, ensure_ascii=False)
    with pytest.raises(CatalogError, match="duplicate song_id '1'"):
        Catalog.load(_write(tmp_path / "c.jsonl", line, line))


@pytest.mark.parametrize(
    "vector",
    [[1, 2, 3], [0, 0, 0, 0, 0, 0], [float("nan"), 1, 0, 0, 0, 0], ["a", 0, 0, 0, 0, 0], None,
     [1, 0, 0, 0, 0, 0, 0]],
    ids=["short", "zero", "nan", "text", "null", "long"],
)
def test_bad_vectors(vector: object) -> None:
    with pytest.raises(CatalogError):
        Song.from_json({**GOOD, "vector": vector})


def test_infinite_vector_in_file(tmp_path: Path) -> None:
    # json.dumps writes Infinity, which Python's json accepts: the Song check must catch it.
    rec = {**GOOD, "vector": [float("inf"), 0, 0, 0, 0, 0]}
    with pytest.raises(CatalogError, match="finite"):
        Catalog.load(_write(tmp_path / "c.jsonl", json.dumps(rec)))


@pytest.mark.parametrize(
    "line",
    ['{"song_id": "1", "title": "a"', "not json at all", "[1, 2, 3]",
     '{"title": "no id", "vector": [1,0,0,0,0,0]}', '{"song_id": "2", "vector": [1,0,0,0,0,0]}',
     '{"song_id": "3", "title": "t", "vector": [1,0,0,0,0,0], "year": "nineteen"}'],
    ids=["truncated", "text", "array", "no-id", "no-title", "bad-year"],
)
def test_malformed_lines(tmp_path: Path, line: str) -> None:
    path = _write(tmp_path / "c.jsonl", json.dumps(GOOD, ensure_ascii=False), line)
    with pytest.raises(CatalogError, match=r"c\.jsonl:2: "):
        Catalog.load(path)


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.jsonl", json.dumps(GOOD), "", '{"song_id": "2", "title"')
    with pytest.raises(CatalogError, match=r"c\.jsonl:3: not JSON"):
        Catalog.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        Catalog.load(tmp_path / "none.jsonl")


def test_dominant_counts() -> None:
    cat = Catalog(
        [Song("a", "a", "x", (0, 0, 1, 0, 0, 0)), Song("b", "b", "x", (0, 0, 0.9, 0, 0.1, 0)),
         Song("c", "c", "x", (0, 0, 0, 0, 1, 0))]
    )
    counts = cat.dominant_counts()
    assert list(counts) == list(LABELS)
    assert counts["슬픔"] == 2 and counts["기쁨"] == 1 and sum(counts.values()) == 3
    assert Catalog([]).dominant_counts() == dict.fromkeys(LABELS, 0)


# ---- synthetic generator ---------------------------------------------------------------------
def test_synthetic_is_deterministic_and_realistic() -> None:
    a, b = synthetic_catalog(3000, seed=4), synthetic_catalog(3000, seed=4)
    assert [s.title for s in a] == [s.title for s in b]
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert synthetic_catalog(50, seed=5).songs[0] != a.songs[0]

    v = a.vectors
    assert (v >= 0).all() and np.allclose(v.sum(axis=1), 1.0, atol=1e-4)
    counts = a.dominant_counts()
    assert all(c > 0 for c in counts.values())
    assert counts["슬픔"] > counts["중립"]  # chart-like skew
    artists = Counter(s.artist for s in a)
    assert artists.most_common(1)[0][1] >= 10 and len(artists) > 100  # prolific few, long tail
    assert len({s.genre for s in a}) >= 8
    assert not find_duplicates(a)
    pop = np.array([s.popularity for s in a])
    assert pop.min() >= 0 and pop.max() < 1 and np.median(pop) < pop.mean() * 1.2
    years = [s.year for s in a if s.year]
    assert min(years) >= 1965 and max(years) <= 2025


def test_mood_queries_cover_every_mood() -> None:
    q = mood_queries(600, seed=1)
    assert q.shape == (600, 6) and q.dtype == np.float32
    lead = Counter(np.argmax(q, axis=1).tolist())
    assert len(lead) == 6 and min(lead.values()) > 60


# ---- moodtune catalog stats ------------------------------------------------------------------
def test_normalise_for_duplicates() -> None:
    assert normalise("Love Poem") == normalise(" love  poem (Feat. 누구) ") == normalise("ＬＯＶＥ-POEM")
    assert normalise("봄날") != normalise("봄 날 2")


def test_stats_clean_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.jsonl"
    synthetic_catalog(300, seed=8).save(path)
    assert moodtune(["catalog", "stats", "--catalog", str(path)]) == 0
    out = capsys.readouterr().out
    assert "300" in out and "슬픔" in out and "발라드" in out and "synthetic" in out
    assert "duplicates none" in out


def test_stats_reports_duplicates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    songs = [
        Song("1", "Love Poem", "IU", (0, 0, 1, 0, 0, 0)),
        Song("2", "love poem (feat. X)", "iu", (0, 0, 1, 0, 0, 0)),
        Song("3", "Other", "IU", (1, 0, 0, 0, 0, 0)),
    ]
    path = tmp_path / "c.jsonl"
    Catalog(songs).save(path)
    assert moodtune(["catalog", "stats", "--catalog", str(path)]) == 1
    out = capsys.readouterr().out
    assert "1 groups" in out and "1, 2" in out


def test_stats_bad_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "c.jsonl", "{oops")
    assert moodtune(["catalog", "stats", "--catalog", str(path)]) == 1
    assert "not JSON" in capsys.readouterr().err
