"""Lyric labelling: chunking, weighting, aggregation, resume, and the CSV/description readers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexing.catalog import Catalog
from inference.emotions import index_of
from tests.fakes import KeywordClassifier
from training.label import (
    SongText,
    aggregate,
    label_songs,
    lyric_chunks,
    read_described_jsonl,
    read_lyrics_csv,
    song_id_for,
)

SAD = "너무 우울해 오늘도 혼자\n눈물만 흘러"
JOY = "신나 신나 오늘 밤\n행복해 우리 함께"


def test_chunks_keep_whole_lines_within_budget():
    lyrics = "\n".join(f"줄 {i} 가나다라마바사" for i in range(30))
    chunks = lyric_chunks(lyrics, max_chars=40)
    assert all(len(c) <= 40 for c in chunks)
    # every line survives, in order
    assert " ".join(chunks).split() == " ".join(lyrics.split("\n")).split()


def test_stanzas_split_and_credits_dropped():
    lyrics = "작사: 누구\n첫 줄\n둘째 줄\n\n\n후렴 시작\n후렴 끝\r\n"
    assert lyric_chunks(lyrics, 100) == ["첫 줄 둘째 줄", "후렴 시작 후렴 끝"]


def test_overlong_line_is_cut_at_spaces_not_dropped():
    line = " ".join(["가나다라"] * 100)
    chunks = lyric_chunks(line, max_chars=50)
    assert all(len(c) <= 50 for c in chunks)
    assert sum(len(c.split()) for c in chunks) == 100


def test_empty_and_whitespace_lyrics_give_no_chunks():
    assert lyric_chunks("") == []
    assert lyric_chunks("\n \n\t\n") == []


def test_aggregate_is_a_weighted_probability_vector():
    p = np.array([[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]], dtype=np.float32)
    v = aggregate(p, np.array([3.0, 1.0]))
    assert v.sum() == pytest.approx(1.0)
    assert v[0] == pytest.approx(0.75)


def _label_one(tmp_path, lyrics: str, classifier=None):
    st = SongText("s1", "곡", "가수", lyrics)
    label_songs([st], classifier or KeywordClassifier(), tmp_path / "c.jsonl", progress=False,
                log=lambda _: None)
    return Catalog.load(tmp_path / "c.jsonl").get("s1")


def test_a_repeated_chorus_counts_once_not_four_times(tmp_path):
    """Issue 11: a chorus sung four times used to outvote every verse (cliché lines won)."""
    sad_verses = "\n\n".join([SAD, "우울해 비가 와\n혼자 걷는 길"])
    song = _label_one(tmp_path, "\n\n".join([sad_verses] + [JOY] * 4))
    assert int(np.argmax(song.vector)) == index_of("슬픔")
    assert song.extra["chunks"] == 6  # all occurrences are still counted in the record


def test_english_only_chunks_do_not_vote_when_there_is_korean(tmp_path):
    """The classifier reads chat Korean; an English hook must not file the song elsewhere."""
    hook = "\n\n".join(f"happy happy {i}\nlet's go" for i in range(3))
    verses = "\n\n".join([SAD, "우울해 비가 와\n혼자 걷는 길에 눈물이 나\n지친 하루가 또 가"])
    song = _label_one(tmp_path, "\n\n".join([verses, hook]))
    assert int(np.argmax(song.vector)) == index_of("슬픔")
    assert song.vector[index_of("슬픔")] > 0.8
    assert song.lang == "mixed" and song.provenance["lang"]["source"] == "lyrics"


def test_an_english_song_keeps_its_vector_with_low_confidence(tmp_path):
    song = _label_one(tmp_path, "I feel so lonely tonight\nwalking alone")
    assert song.lang == "en" and song.provenance["vector"]["confidence"] <= 0.3


def test_chunks_are_weighed_by_the_classifiers_confidence(tmp_path):
    """An undecided chunk (a flat vector) barely moves the song."""
    class Unsure(KeywordClassifier):
        def predict(self, texts):
            out = super().predict(texts)
            for r, t in enumerate(texts):
                if "애매" in t:
                    out[r] = [0.15, 0.15, 0.15, 0.15, 0.25, 0.15]
            return out

    song = _label_one(tmp_path, "\n\n".join([SAD] + [f"애매한 말 {i}" for i in range(5)]),
                      Unsure())
    assert int(np.argmax(song.vector)) == index_of("슬픔")


def test_lyric_themes_come_from_a_lexicon_over_unique_lines(tmp_path):
    lyrics = "\n".join(["헤어지자는 말", "이별이 와", "잊어야 하는데", "그리워 너를", "비가 와"] * 3)
    song = _label_one(tmp_path, lyrics)
    assert "이별" in song.themes and song.provenance["themes"]["source"] == "lyrics"
    assert song.moods["lyrics"] == song.vector


def _songs(n):
    moods = [SAD, JOY, "편안하고 여유로운 오후", "불안해 떨려"]
    return [SongText(f"id{i}", f"제목{i}", f"가수{i % 7}", moods[i % 4]) for i in range(n)]


def test_label_writes_catalogue_and_skips_empty_and_duplicates(tmp_path):
    songs = [*_songs(10), SongText("e", "빈", "가수", "   "), SongText("dup", "제목1", "가수1", JOY)]
    clf = KeywordClassifier()
    rep = label_songs(songs, clf, tmp_path / "c.jsonl", progress=False, log=lambda _: None)
    assert (rep.labelled, rep.empty, rep.duplicates) == (10, 1, 1)
    cat = Catalog.load(tmp_path / "c.jsonl")
    assert len(cat) == 10 and "e" not in cat and "dup" not in cat
    assert not (tmp_path / "c.jsonl.partial").exists()


def test_resume_after_interruption_labels_nothing_twice(tmp_path):
    out = tmp_path / "c.jsonl"

    class Boom(KeywordClassifier):
        def predict(self, texts):
            if self.calls >= 8:
                raise KeyboardInterrupt
            return super().predict(texts)

    songs = _songs(40)
    with pytest.raises(KeyboardInterrupt):
        label_songs(songs, Boom(), out, songs_per_batch=4, progress=False, log=lambda _: None)
    partial = out.with_name(out.name + ".partial")
    done_before = {json.loads(line)["song_id"] for line in partial.read_text().splitlines()}
    assert 0 < len(done_before) < 40
    clf = KeywordClassifier()
    rep = label_songs(songs, clf, out, songs_per_batch=4, progress=False, log=lambda _: None)
    assert rep.skipped_done == len(done_before)
    assert rep.labelled == 40 - len(done_before)
    assert clf.calls == 40 - len(done_before)  # one chunk per song, none classified twice
    assert len(Catalog.load(out)) == 40


def test_torn_partial_line_is_relabelled(tmp_path):
    out = tmp_path / "c.jsonl"
    partial = out.with_name(out.name + ".partial")
    partial.write_text('{"song_id": "id0", "title": "제목0", "artist": "가', encoding="utf-8")
    rep = label_songs(_songs(3), KeywordClassifier(), out, progress=False, log=lambda _: None)
    assert rep.labelled == 3


def test_nothing_labellable_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no song could be labelled"):
        label_songs([SongText("e", "t", "a", "")], KeywordClassifier(), tmp_path / "c.jsonl",
                    progress=False, log=lambda _: None)


def test_song_ids_are_stable_and_prefer_melon():
    assert song_id_for("밤편지", "아이유") == song_id_for(" 밤편지", "아이유 ")
    assert song_id_for("밤편지", "아이유") != song_id_for("밤편지", "다른가수")
    assert song_id_for("x", "y", 123) == "melon:123"


def test_readers(tmp_path):
    csv_path = tmp_path / "l.csv"
    csv_path.write_text('title,artist,genre,lyrics\n곡,가수,발라드,"첫 줄\n둘째 줄"\n,없음,,x\n',
                        encoding="utf-8")
    rows = list(read_lyrics_csv(csv_path))
    assert len(rows) == 1 and rows[0].genre == "발라드" and "둘째" in rows[0].text
    bad = tmp_path / "bad.csv"
    bad.write_text("name,lyrics\nx,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing columns"):
        list(read_lyrics_csv(bad))
    d = tmp_path / "d.jsonl"
    d.write_text(json.dumps({"title": "t", "artist": "a", "mood_ko": "잔잔한 노래"},
                            ensure_ascii=False) + "\n\n", encoding="utf-8")
    (st,) = list(read_described_jsonl(d))
    assert st.source == "description" and st.extra["description"] == "잔잔한 노래"


def test_label_cli_uses_fp32_so_a_songs_vector_does_not_depend_on_its_batch(tmp_path):
    """int8 is dynamically quantised per ONNX call: the same chunk moves with its batch mates.

    The catalogue is built once and kept, so `moodtune label` defaults to the fp32 graph,
    whose vectors are the same whether a song is labelled alone or with others.
    """
    import argparse

    from inference.classifier import EmotionClassifier
    from training import label_cli

    ap = argparse.ArgumentParser()
    label_cli.configure(ap)
    assert ap.parse_args([]).variant == "fp32"
    lyrics = [SAD, JOY, "편안하고 여유로운 오후\n창밖을 봐", "불안해 떨려 숨이 막혀",
              "왜 나한테만 그래 열받아", "오늘은 회의가 있고 내일은 출장", "빗소리 들으며 잠들래"]
    songs = [SongText(f"s{i}", f"제목{i}", "가수", t) for i, t in enumerate(lyrics)]
    fp32 = EmotionClassifier.load(variant="fp32")
    together = label_songs(songs, fp32, tmp_path / "a.jsonl", progress=False, log=lambda _: None)
    alone = label_songs(songs, fp32, tmp_path / "b.jsonl", songs_per_batch=1, progress=False,
                        log=lambda _: None)
    assert together.labelled == alone.labelled == len(songs)
    a, b = Catalog.load(tmp_path / "a.jsonl"), Catalog.load(tmp_path / "b.jsonl")
    for s in songs:
        assert np.allclose(a.get(s.song_id).vector, b.get(s.song_id).vector, atol=1e-6)


def test_described_song_read_as_another_mood_is_held_out_and_named(tmp_path):
    d = tmp_path / "described.jsonl"
    rows = [
        {"title": "맞는 곡", "artist": "가수", "mood_ko": "마음이 편안해지는 노래", "intended": "평화"},
        {"title": "어긋난 곡", "artist": "가수", "mood_ko": "신나는 노래", "intended": "긴장"},
        {"title": "의도 없는 곡", "artist": "가수", "mood_ko": "우울한 노래"},
    ]
    d.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    logs: list[str] = []
    rep = label_songs(read_described_jsonl(d), KeywordClassifier(), tmp_path / "c.jsonl",
                      progress=False, log=logs.append)
    assert rep.labelled == 2 and rep.disagreed == [("어긋난 곡", "가수", "긴장", "기쁨")]
    titles = {s.title for s in Catalog.load(tmp_path / "c.jsonl")}
    assert titles == {"맞는 곡", "의도 없는 곡"}  # no intent given: nothing to disagree with
    assert "어긋난 곡 / 가수 (긴장 -> 기쁨)" in logs[-1]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"title": "t", "artist": "a", "mood_ko": "x", "intended": "졸림"},
                              ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValueError, match="bad record"):
        list(read_described_jsonl(bad))


@pytest.mark.slow
def test_label_on_the_shared_lyrics_reproduces_the_lyric_part_of_the_shipped_catalogue(tmp_path):
    """Issue 11: the catalogue's lyric source is exactly what `moodtune label` computes."""
    import itertools

    from indexing.catalog import load_default
    from inference.classifier import EmotionClassifier
    from training.paths import songs_csv as lyrics_csv

    if not lyrics_csv().exists():
        pytest.skip(f"shared lyrics not found at {lyrics_csv()}")
    songs = list(itertools.islice(read_lyrics_csv(lyrics_csv()), 40))
    clf = EmotionClassifier.load(variant="fp32", threads=2, batch_size=64)
    label_songs(songs, clf, tmp_path / "c.jsonl", progress=False, log=lambda _: None)
    shipped = load_default()
    compared = 0
    for song in Catalog.load(tmp_path / "c.jsonl"):
        ref = shipped.get(song.song_id)
        if ref is None or "lyrics" not in ref.moods:
            continue
        assert np.allclose(song.vector, ref.moods["lyrics"], atol=1e-5), song.title
        assert song.lang == ref.lang or ref.provenance["lang"]["source"] != "lyrics"
        compared += 1
    assert compared >= 30
