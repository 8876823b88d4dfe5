"""Pure parsing of Melon pages (fixtures follow the real page structure) and row matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.parse import (
    MelonParseError,
    SearchRow,
    artist_matches,
    choose_row,
    normalize_title,
    parse_album,
    parse_search,
    parse_song,
)

FIX = Path(__file__).parent / "fixtures" / "melon"


def page(name: str) -> str:
    return (FIX / name).read_text(encoding="utf-8")


def test_song_found_fields_by_label() -> None:
    p = parse_song(page("song_found.html"), 8203052)
    assert p.status == "found" and p.reason is None
    assert p.title == "밤편지 (Feat. 누군가)"          # no "곡명" label, no "19금" badge
    assert p.adult is True
    assert p.artists == ("아이유", "누군가")
    # dl order in the fixture is 발매일/장르/앨범: fields are matched by dt label, not position.
    assert (p.album, p.release_date, p.genre) == ("밤편지", "2017-03-24", "발라드")
    assert p.extra == {"FLAC": "Flac 16/24bit"}
    assert p.lyrics == ("이 밤 그날의 반딧불을\n당신의 창 가까이 보낼게요\n음 사랑한다는 말이에요\n\n"
                        "나 우리의 첫 입맞춤을 떠올려")


def test_song_lyrics_not_ready() -> None:
    p = parse_song(page("song_not_ready.html"))
    assert (p.status, p.reason, p.lyrics) == ("no_lyrics", "lyrics_not_ready", None)
    assert p.genre == "인디음악, 록/메탈"


def test_song_adult_notice_is_no_lyrics() -> None:
    p = parse_song(page("song_adult.html"))
    assert (p.status, p.reason, p.lyrics, p.adult) == ("no_lyrics", "adult_verification", None, True)


def test_not_a_song_page_is_an_error() -> None:
    with pytest.raises(MelonParseError, match="song_name"):
        parse_song(page("not_song.html"))


def test_truncated_page_is_an_error() -> None:
    html = page("song_found.html")
    with pytest.raises(MelonParseError, match="truncated"):
        parse_song(html[: html.index("d_video_summary") + 40])


def test_malformed_html_does_not_crash() -> None:
    html = page("song_found.html").replace("</div>", "", 7).replace("<dd>", "<dd><<>", 1)
    p = parse_song(html)
    assert p.title.startswith("밤편지") and p.status == "found"


def test_search_rows() -> None:
    rows = parse_search(page("search_dupes.html"))
    assert rows == [SearchRow(1001, "사랑", ("가수A",)),
                    SearchRow(1002, "사랑 (Feat. 가수C)", ("IVE (아이브)", "가수C")),
                    SearchRow(1003, "사랑은", ("IVE (아이브)",))]
    assert parse_search(page("search_empty.html")) == []
    with pytest.raises(MelonParseError):
        parse_search(page("song_found.html"))


def test_album_rows() -> None:
    rows = parse_album(page("album.html"))
    assert [(r.song_id, r.title) for r in rows] == [(30387941, "이런 엔딩"),
                                                    (30387942, "팔레트 (Feat. G-DRAGON)")]
    with pytest.raises(MelonParseError):
        parse_album(page("not_song.html"))


@pytest.mark.parametrize(("a", "b"), [
    ("밤편지 (Feat. 누군가)", "밤 편지!"), ("ＬＯＶＥ　ＤＩＶＥ", "love dive"),
    ("Love [Remastered]", "LOVE"), ("Hype Boy feat. X", "hype boy"), ("(여자)아이들", "(여자)아이들"),
])
def test_normalize_title_equal(a: str, b: str) -> None:
    assert normalize_title(a) == normalize_title(b)


def test_artist_variants() -> None:
    assert artist_matches(["아이브"], ["IVE (아이브)"])
    assert artist_matches(["IVE"], ["IVE (아이브)"])
    assert artist_matches(["방탄소년단"], ["BTS", "방탄소년단"])
    assert not artist_matches(["가수A"], ["가수B"])
    assert not artist_matches(["가수A"], [])


def test_choose_row_duplicate_titles_picks_artist() -> None:
    rows = parse_search(page("search_dupes.html"))
    assert choose_row(rows, "사랑", ["IVE"]).row.song_id == 1002  # type: ignore[union-attr]
    assert choose_row(rows, "사랑", ["가수A"]).row.song_id == 1001  # type: ignore[union-attr]
    assert choose_row(rows, "사랑", ["가수Z"]).reason == "artist_mismatch"
    assert choose_row(rows, "미움", ["가수A"]).reason == "title_mismatch"
    assert choose_row([], "사랑", ["가수A"]).reason == "no_rows"
    # Album pages: artist not required, but preferred when several rows share a title.
    out = choose_row(rows, "사랑", ["someone else"], require_artist=False)
    assert out.row is not None and out.row.song_id == 1001
