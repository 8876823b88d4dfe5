"""``moodtune crawl``: refusal without permission, full run, summary, resume, robots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bot.cli import main
from crawler import crawl_cli as cli
from crawler.fake_melon import FakeMelon, FakeSong, ThreadedFakeMelon


def test_defaults_are_polite() -> None:
    p = argparse.ArgumentParser()
    cli.configure(p)
    args = p.parse_args([])
    assert args.min_interval >= 2.0
    assert args.base_url == "https://www.melon.com"
    assert args.db == Path("var/crawl.sqlite3")
    assert not args.i_have_permission and not args.ignore_robots


def test_refuses_real_melon_without_permission(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "s.csv"
    csv.write_text("title,artist\n밤편지,아이유\n", encoding="utf-8")
    db = tmp_path / "c.sqlite3"
    rc = main(["crawl", "--songs", str(csv), "--db", str(db), "--ignore-robots"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--i-have-permission" in err and "robots.txt" in err
    assert not db.exists()  # refused before touching anything


def test_refusal_states_the_real_pace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["crawl", "--db", str(tmp_path / "c.sqlite3"), "--min-interval", "0.5"])
    err = capsys.readouterr().err
    assert rc == 2 and "2.0+ s" in err and "0.5" not in err  # Melon's floor, not the ask


def _arena(tmp_path: Path) -> tuple[Path, Path]:
    meta = [
        {"id": 1, "song_name": "밤편지", "artist_name_basket": ["아이유"], "album_name": "밤편지",
         "album_id": 11, "artist_id_basket": [1], "song_gn_gnr_basket": ["GN0100"],
         "song_gn_dtl_gnr_basket": ["GN0101"], "issue_date": "20170324"},
        {"id": 2, "song_name": "Canon", "artist_name_basket": ["Orchestra"], "album_name": "C",
         "album_id": 12, "artist_id_basket": [2], "song_gn_gnr_basket": ["GN1600"],
         "song_gn_dtl_gnr_basket": [], "issue_date": "19990101"},
        {"id": 3, "song_name": "없는 곡", "artist_name_basket": ["누구"], "album_name": "X",
         "album_id": None, "artist_id_basket": [3], "song_gn_gnr_basket": ["GN0100"],
         "song_gn_dtl_gnr_basket": [], "issue_date": "20200101"},
        {"id": 4, "song_name": "준비중", "artist_name_basket": ["밴드"], "album_name": "Y",
         "album_id": 14, "artist_id_basket": [4], "song_gn_gnr_basket": ["GN0100"],
         "song_gn_dtl_gnr_basket": [], "issue_date": "20200101"},
    ]
    songs = tmp_path / "song_meta.json"
    songs.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    genres = tmp_path / "genre_gn_all.json"
    genres.write_text(json.dumps({"0100": "발라드", "0101": "세부장르전체", "1600": "클래식"},
                                 ensure_ascii=False), encoding="utf-8")
    return songs, genres


def fake() -> FakeMelon:
    return FakeMelon([FakeSong(101, "밤편지", ["아이유"], album_id=11),
                      FakeSong(104, "준비중", ["밴드"], album_id=14, lyrics=None)])


def test_cli_crawl_summary_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    songs, genres = _arena(tmp_path)
    db = tmp_path / "c.sqlite3"
    with ThreadedFakeMelon(fake()) as server:
        argv = ["crawl", "--songs", str(songs), "--genres", str(genres), "--db", str(db),
                "--base-url", server.base_url, "--min-interval", "0.01", "--no-progress"]
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert "read 4, kept 3, genre:클래식 1" in err
        assert "found" in err and "not_found" in err and "no_rows (search)" in err
        assert "lyrics_not_ready" in err
        hits = sum(server.hits.values())
        assert main(argv) == 0  # resume: nothing left to do, no request made
        assert "nothing to crawl" in capsys.readouterr().err
        assert sum(server.hits.values()) == hits


def test_cli_robots_disallow_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    songs, genres = _arena(tmp_path)
    f = fake()
    f.robots = "User-agent: *\nDisallow: /\n"
    with ThreadedFakeMelon(f) as server:
        rc = main(["crawl", "--songs", str(songs), "--genres", str(genres), "--db",
                   str(tmp_path / "c.sqlite3"), "--base-url", server.base_url,
                   "--min-interval", "0.01", "--no-progress"])
        assert rc == 3
        assert "robots.txt disallows" in capsys.readouterr().err
        assert set(server.hits) == {("robots", 0)}
        # --ignore-robots (allowed for a non-Melon host) crawls anyway
        rc = main(["crawl", "--db", str(tmp_path / "c.sqlite3"), "--base-url", server.base_url,
                   "--min-interval", "0.01", "--no-progress", "--ignore-robots"])
        assert rc == 0
        assert server.hits[("song", 101)] == 1


def test_cli_refused_redirect_is_a_song_error_not_a_crash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    songs, genres = _arena(tmp_path)
    db = tmp_path / "c.sqlite3"
    with ThreadedFakeMelon(fake()) as server, ThreadedFakeMelon(fake()) as other:
        server.redirects[("song", 101)] = f"{other.base_url}/song/detail.htm?songId=101"
        argv = ["crawl", "--songs", str(songs), "--genres", str(genres), "--db", str(db),
                "--base-url", server.base_url, "--min-interval", "0.01", "--no-progress"]
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert "redirect_off_host" in err and "lyrics_not_ready" in err  # the others went on
        assert not other.hits
        # The operator may widen the crawl's hosts explicitly; then the hop is followed.
        other_host = other.base_url.split("//", 1)[1]
        assert main([*argv, "--retry-errors", "--allow-host", other_host]) == 0
        assert other.hits[("song", 101)] == 1 and other.hits[("robots", 0)] == 1
        assert "redirect_off_host" not in capsys.readouterr().err


def test_cli_bad_seed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "song_meta.json"
    bad.write_text('{"not": "an array"}', encoding="utf-8")
    rc = main(["crawl", "--songs", str(bad), "--db", str(tmp_path / "c.sqlite3"),
               "--base-url", "http://127.0.0.1:9", "--no-progress"])
    assert rc == 2
    assert "JSON array" in capsys.readouterr().err


def test_second_crawl_on_same_db_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.sqlite3"
    held = cli._lock_db(db)
    assert held not in (False, None)
    rc = main(["crawl", "--db", str(db), "--base-url", "http://127.0.0.1:9", "--no-progress"])
    assert rc == 2 and "already using" in capsys.readouterr().err
    held.close()  # type: ignore[union-attr]
