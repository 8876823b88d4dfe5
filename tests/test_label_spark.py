"""``moodtune label --engine spark``: the same catalogue as the local labeller, one classifier per
partition, resumable, bad rows handled alike (issue 14, point 4)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from inference.classifier import EmotionClassifier
from training.label import label_songs, read_described_jsonl, read_lyrics_csv

pytestmark = [pytest.mark.slow, pytest.mark.spark]

# Made-up lines (no real lyrics): each song is a few of them, so songs differ in mood and length.
LINES = [
    "너무 우울해 오늘도 혼자", "눈물만 흘러 밤새도록", "신나 신나 오늘 밤 춤을 춰", "행복해 우리 함께라면",
    "편안하고 여유로운 오후", "창밖을 보며 차 한잔", "불안해 떨려 숨이 막혀", "내일이 오는 게 무서워",
    "왜 나한테만 그래 열받아", "더는 못 참아 화가 나", "빗소리 들으며 잠들래", "바람이 불어 좋은 날",
    "oh yeah baby tonight", "we gonna dance all night",
]


def _lyrics(i: int) -> str:
    picks = [LINES[(i * 3 + k) % len(LINES)] for k in range(2 + i % 5)]
    stanza = "\n".join(picks)
    return "\n\n".join([stanza, LINES[i % len(LINES)] + "\n" + LINES[(i + 5) % len(LINES)],
                        stanza])  # a repeated chorus


def _write_csv(path: Path, n: int = 28) -> Path:
    rows = [{"title": f"노래 {i}", "artist": f"가수 {i % 6}", "genre": "발라드" if i % 2 else "댄스",
             "lyrics": _lyrics(i), "album": f"앨범 {i % 3}" if i % 4 else "",
             "year": str(2000 + i) if i % 5 else "", "melon_id": str(9000 + i) if i % 7 == 0
             else ""} for i in range(n)]
    rows.insert(5, {**rows[0], "title": "", "melon_id": ""})  # missing title: dropped
    rows.insert(9, {**rows[1], "title": "빈 노래", "lyrics": "  \n ", "melon_id": ""})  # empty
    rows.insert(12, {**rows[2], "title": "노래 2 (feat. 누구)", "melon_id": ""})  # duplicate key
    rows.append({**rows[3], "title": "영어 노래", "lyrics": "oh yeah baby tonight\nwe gonna dance",
                 "melon_id": ""})
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def lyrics_csv(tmp_path_factory) -> Path:
    return _write_csv(tmp_path_factory.mktemp("lyrics") / "lyrics.csv")


@pytest.fixture(scope="module")
def local(lyrics_csv, tmp_path_factory):
    """What ``--engine local`` writes for the fixture: the reference."""
    out = tmp_path_factory.mktemp("local") / "c.jsonl"
    clf = EmotionClassifier.load(variant="fp32", threads=2, batch_size=64)
    rep = label_songs(read_lyrics_csv(lyrics_csv), clf, out, progress=False, log=lambda _: None)
    return out, rep


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _assert_same_catalogue(got: Path, want: Path) -> None:
    a, b = _lines(got), _lines(want)
    assert [d["song_id"] for d in a] == [d["song_id"] for d in b]  # same songs, same order
    for x, y in zip(a, b, strict=True):
        vx, vy = x.pop("vector"), y.pop("vector")
        mx, my = x.pop("moods"), y.pop("moods")
        assert np.allclose(vx, vy, atol=1e-5), x["song_id"]
        assert mx.keys() == my.keys() and all(np.allclose(mx[k], my[k], atol=1e-5) for k in mx)
        assert x == y  # every other field, key order included


def test_spark_writes_the_local_labellers_catalogue(spark, lyrics_csv, local, tmp_path):
    from training.label_spark import label_spark

    want, ref = local
    out = tmp_path / "c.jsonl"
    rep = label_spark(spark, lyrics_csv, out, partitions=3, progress=False, log=lambda _: None)
    _assert_same_catalogue(out, want)
    # bad rows as locally: missing title dropped, empty counted, duplicate key counted
    assert (rep.labelled, rep.empty, rep.duplicates, rep.chunks) == (
        ref.labelled, ref.empty, ref.duplicates, ref.chunks)
    assert (rep.empty, rep.duplicates) == (1, 1)
    # one ONNX session per partition, every partition used
    assert sorted(p["partition"] for p in rep.partitions) == [0, 1, 2]
    assert all(p["loads"] == 1 and p["labelled"] > 0 for p in rep.partitions)
    assert not out.with_name("c.jsonl.parts").exists()
    assert not out.with_name("c.jsonl.partial").exists()


def test_resume_skips_songs_done_by_an_earlier_run(spark, lyrics_csv, local, tmp_path):
    """A local partial output and a killed Spark run's part files (torn last line included)
    are both resume points; nothing done is labelled again."""
    from training.label_spark import label_spark

    want, ref = local
    lines = want.read_text(encoding="utf-8").splitlines()
    out = tmp_path / "c.jsonl"
    out.with_name("c.jsonl.partial").write_text("\n".join(lines[:4]) + "\n", encoding="utf-8")
    parts = out.with_name("c.jsonl.parts")
    parts.mkdir()
    (parts / "run000-p00001-a0.jsonl").write_text(
        "".join(f"[{100 + i}, {line}]\n" for i, line in enumerate(lines[4:9]))
        + '[120, {"song_id": "x", "ti', encoding="utf-8")
    rep = label_spark(spark, lyrics_csv, out, partitions=2, progress=False, log=lambda _: None)
    assert rep.skipped_done == 9
    assert rep.labelled == ref.labelled - 9
    assert sum(p["labelled"] for p in rep.partitions) == ref.labelled - 9
    _assert_same_catalogue(out, want)  # done songs first, then the rest in input order
    assert not parts.exists()

    again = label_spark(spark, lyrics_csv, out, partitions=2, resume=False, progress=False,
                        log=lambda _: None)
    assert again.skipped_done == 0 and again.labelled == ref.labelled


def test_described_songs_and_a_shipped_model_dir(spark, tmp_path):
    """The local readers' songs go through Spark too (songs_dataframe); a description read as
    another mood is held out and named as locally; the model can travel with SparkFiles."""
    from training.label_spark import label_spark

    d = tmp_path / "described.jsonl"
    rows = [
        {"title": "잔잔한 곡", "artist": "가수", "mood_ko": "마음이 편안해지는 잔잔한 노래"},
        {"title": "어긋난 곡", "artist": "가수", "mood_ko": "너무 신나고 행복한 노래",
         "intended": "슬픔"},
        {"title": "우울한 곡", "artist": "가수", "mood_ko": "혼자 우는 밤 너무 우울해",
         "melon_id": 77},
    ]
    d.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    clf = EmotionClassifier.load(variant="fp32")
    ref = label_songs(read_described_jsonl(d), clf, tmp_path / "local.jsonl", progress=False,
                      log=lambda _: None)
    rep = label_spark(spark, read_described_jsonl(d), tmp_path / "spark.jsonl", partitions=2,
                      ship_model=True, progress=False, log=lambda _: None)
    assert rep.disagreed == ref.disagreed and rep.labelled == ref.labelled
    _assert_same_catalogue(tmp_path / "spark.jsonl", tmp_path / "local.jsonl")


def test_cli_engine_spark(spark, lyrics_csv, local, tmp_path, capsys):
    from training import label_cli

    want, _ = local
    ap = argparse.ArgumentParser()
    label_cli.configure(ap)
    for i, inputs in enumerate((["--table", str(lyrics_csv)], ["--csv", str(lyrics_csv)])):
        out = tmp_path / f"c{i}.jsonl"
        args = ap.parse_args(["--engine", "spark", *inputs, "--out", str(out),
                              "--partitions", "2", "--no-progress"])
        assert label_cli.run(args) == 0
        _assert_same_catalogue(out, want)
    assert label_cli.run(ap.parse_args(["--table", str(lyrics_csv)])) == 2  # needs --engine
    assert "--engine spark" in capsys.readouterr().err


def test_cli_without_spark_exits_2_with_the_reason(tmp_path, monkeypatch, capsys):
    from training import label_cli
    from training import spark as spark_mod

    def unavailable(*_a, **_k):
        raise spark_mod.SparkUnavailableError("no Java runtime: install Java 17")

    monkeypatch.setattr(spark_mod, "session", unavailable)
    csv_path = _write_csv(tmp_path / "l.csv", n=3)
    ap = argparse.ArgumentParser()
    label_cli.configure(ap)
    args = ap.parse_args(["--engine", "spark", "--csv", str(csv_path), "--out",
                          str(tmp_path / "c.jsonl")])
    assert label_cli.run(args) == 2
    assert "no Java runtime" in capsys.readouterr().err


def test_spark_submit_recipe_labels_like_the_local_labeller(lyrics_csv, local, tmp_path):
    """The README's cluster recipe in local mode: ``spark-submit --py-files moodtune.zip
    deploy/spark_job.py label --engine spark --ship-model --model-dir …`` (the model shipped
    with the job, the code only from the zip) writes the local labeller's catalogue."""
    from tests.spark_support import REPO, spark_submit

    out = tmp_path / "labelled.jsonl"
    done = spark_submit(["label", "--engine", "spark", "--partitions", "2", "--ship-model",
                         "--model-dir", str(REPO / "inference" / "models" / "default"),
                         "--csv", str(lyrics_csv), "--out", str(out), "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_catalogue(out, local[0])
