"""Seed readers: streaming song_meta.json, genre filters, CSV seeds."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from crawler.arena import (
    ArenaFormatError,
    FilterStats,
    SeedFileError,
    SongSeed,
    instrumental_genre,
    is_instrumental_title,
    iter_json_array,
    load_genre_map,
    load_seeds,
    read_song_meta,
    read_songs_csv,
)
from training.paths import shared_dir

REAL_GENRES = shared_dir() / "data" / "kakao_arena" / "genre_gn_all.json"


def _genre_file(tmp_path: Path) -> Path:
    p = tmp_path / "genre_gn_all.json"
    p.write_text(json.dumps({
        "0100": "발라드", "0101": "세부장르전체", "1600": "클래식", "1700": "재즈",
        "1702": "보컬재즈", "1800": "뉴에이지", "2400": "국악", "2700": "EDM",
        "2800": "뮤직테라피", "1100": "일렉트로니카", "0300": "랩/힙합",
    }, ensure_ascii=False), encoding="utf-8")
    return p


def _meta(i: int, name: str, gnr: list[str], dtl: list[str] | None = None, **kw: object) -> dict:
    rec = {"id": i, "song_name": name, "artist_name_basket": ["가수 &amp; 밴드"],
           "album_name": "앨범 &lt;1&gt;", "album_id": 1000 + i, "artist_id_basket": [1],
           "song_gn_gnr_basket": gnr, "song_gn_dtl_gnr_basket": dtl or [],
           "issue_date": "20190412"}
    rec.update(kw)
    return rec


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 16])
def test_iter_json_array_any_chunking(chunk: int) -> None:
    data = [{"id": 1, "song_name": "밤편지 — \"따옴표\" \\ 역슬래시"}, 12345, -0.5e3, True, None,
            "끝 문자열", [], {}, {"nested": [1, {"a": "가나다"}]}]
    text = "\ufeff  \n[ " + " ,\n ".join(json.dumps(x, ensure_ascii=False) for x in data) + " ]\n"
    assert list(iter_json_array(io.StringIO(text), chunk_chars=chunk)) == data


def test_iter_json_array_is_incremental() -> None:
    """Elements arrive before the whole file has been read (it is never loaded at once)."""
    class Reader(io.StringIO):
        consumed = 0

        def read(self, n: int = -1) -> str:
            out = super().read(n)
            Reader.consumed += len(out)
            return out

    body = "[" + ",".join(json.dumps({"id": i, "pad": "x" * 100}) for i in range(5000)) + "]"
    it = iter_json_array(Reader(body), chunk_chars=4096)
    assert next(it)["id"] == 0
    assert Reader.consumed <= 8192 < len(body)


@pytest.mark.parametrize("text", ["", "   ", '{"id": 1}', "[1, 2", "[1 2]", '[{"id": 1}, {"id": ]',
                                  "[1,]x", '[{"a": "unterminated'])
def test_iter_json_array_malformed(text: str) -> None:
    with pytest.raises(ArenaFormatError):
        list(iter_json_array(io.StringIO(text), chunk_chars=4))


def test_iter_json_array_empty() -> None:
    assert list(iter_json_array(io.StringIO("[]"))) == []


def test_real_genre_map_shape() -> None:
    if not REAL_GENRES.exists():
        pytest.skip("shared data not present")
    gm = load_genre_map(REAL_GENRES)
    assert gm["0100"] == "발라드" and gm["1600"] == "클래식" and len(gm) == 254
    assert instrumental_genre([gm["1600"]]) == "클래식"
    assert instrumental_genre([gm["2700"]]) == "EDM"
    assert instrumental_genre([gm["2400"]]) == "국악"
    assert instrumental_genre([gm["0100"]]) is None


@pytest.mark.parametrize(("title", "inst"), [
    ("밤편지 (Inst.)", True), ("밤편지 (inst)", True), ("Love [Instrumental]", True),
    ("사랑 (MR)", True), ("사랑 - MR", True), ("사랑 - Inst.", True), ("Inst.", True),
    ("Some Song Instrumental Version", True), ("팔레트 (Inst. Ver.)", True),
    ("Mr. Chu (On Stage)", False), ("Instinct", False), ("MR. 로봇", False), ("밤편지", False),
    ("사랑 (Feat. 누구)", False),
])
def test_instrumental_titles(title: str, inst: bool) -> None:
    assert is_instrumental_title(title) is inst


def test_instrumental_genre_rules() -> None:
    assert instrumental_genre(["클래식"]) == "클래식"
    assert instrumental_genre(["재즈"], ["보컬재즈"]) is None      # vocal jazz has lyrics
    assert instrumental_genre(["발라드", "일렉트로니카"]) is None  # any sung genre keeps it
    assert instrumental_genre([]) is None


def test_read_song_meta_filters_and_counts(tmp_path: Path) -> None:
    records = [
        _meta(1, "밤편지", ["GN0100"]),
        _meta(2, "Canon &amp; Gigue", ["GN1600"]),
        _meta(3, "Take Five", ["GN1700"]),
        _meta(4, "Fly Me", ["GN1700"], ["GN1702"]),
        _meta(5, "밤편지 (Inst.)", ["GN0100"]),
        _meta(6, "River Flows", ["GN1800"]),
        _meta(7, "아리랑", ["GN2400"]),
        _meta(8, "Drop", ["GN2700"]),
        _meta(9, "잠", ["GN2800"]),
        _meta(10, "", ["GN0100"]),
        "not an object",
        _meta(11, "힙합", ["GN0300"], issue_date="0"),
        _meta(12, "no artist", ["GN0100"], artist_name_basket=[]),
    ]
    path = tmp_path / "song_meta.json"
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    stats = FilterStats()
    seeds = list(read_song_meta(path, load_genre_map(_genre_file(tmp_path)), stats,
                                chunk_chars=50))
    assert [s.seed_id for s in seeds] == ["1", "4", "11"]
    s = seeds[0]
    assert s == SongSeed("1", "밤편지", ("가수 & 밴드",), "앨범 <1>", 1001, ("발라드",), 2019)
    assert seeds[2].year is None
    assert stats.read == 13 and stats.kept == 3
    assert stats.dropped == {"genre:클래식": 1, "genre:재즈": 1, "inst_title": 1,
                             "genre:뉴에이지": 1, "genre:국악": 1, "genre:EDM": 1,
                             "genre:뮤직테라피": 1, "no_title": 1, "bad_record": 1,
                             "no_artist": 1}
    assert "kept 3" in stats.summary()


def test_read_songs_csv(tmp_path: Path) -> None:
    p = tmp_path / "songs.csv"
    p.write_text("Title,Artist,album_id,genre,year\n"
                 "밤편지,아이유,10041214,발라드,2017\n"
                 "밤편지,아이유,,,\n"
                 "Canon,Pachelbel,,클래식,\n"
                 "사랑 (MR),누구,,,\n"
                 "I AM,IVE (아이브),,댄스,2023\n", encoding="utf-8")
    stats = FilterStats()
    seeds = list(read_songs_csv(p, stats))
    assert [(s.title, s.artists, s.album_id, s.year) for s in seeds] == [
        ("밤편지", ("아이유",), 10041214, 2017), ("I AM", ("IVE (아이브)",), None, 2023)]
    assert seeds[0].seed_id.startswith("csv:")
    assert stats.dropped == {"duplicate": 1, "genre:클래식": 1, "inst_title": 1}
    # Stable ids: the same rows (even reordered) map onto the same crawl rows.
    again = list(read_songs_csv(p))
    assert [s.seed_id for s in again] == [s.seed_id for s in seeds]


def test_csv_needs_header(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("name,singer\na,b\n", encoding="utf-8")
    with pytest.raises(SeedFileError, match="title"):
        list(read_songs_csv(p))


def test_load_seeds_dispatch(tmp_path: Path) -> None:
    meta = tmp_path / "song_meta.json"
    meta.write_text(json.dumps([_meta(1, "a", ["GN1600"]), _meta(2, "b", ["GN0100"])]),
                    encoding="utf-8")
    assert [s.seed_id for s in load_seeds(meta, _genre_file(tmp_path))] == ["2"]
    with pytest.raises(SeedFileError):
        load_seeds(tmp_path / "x.parquet")
