"""train → export → quantise → load → predict on a tiny model, and ONNX == PyTorch."""

import csv
import json
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("optimum.exporters.onnx")

from inference.classifier import EmotionClassifier  # noqa: E402
from inference.emotions import LABELS  # noqa: E402
from training.classifier import TrainConfig, predict_logits, train  # noqa: E402
from training.data import build_dataset  # noqa: E402
from training.export import export_model  # noqa: E402

WORDS = {
    "분노": ["화나", "짜증나", "열받아", "빡쳐"],
    "긴장": ["무서워", "불안해", "떨려", "걱정돼"],
    "슬픔": ["슬퍼", "우울해", "눈물나", "외로워"],
    "평화": ["편안해", "여유로워", "평온해", "느긋해"],
    "기쁨": ["행복해", "신나", "기뻐", "좋아"],
    "중립": ["그냥", "보통이야", "밥 먹었어", "회의 있어"],
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    rng = random.Random(0)
    rows = []
    for lab, ws in WORDS.items():
        for i in range(60):
            rows.append({"sentence": f"오늘 {rng.choice(ws)} 진짜 {i}", "label": lab})
    with (d / "data.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["sentence", "label"])
        w.writeheader()
        w.writerows(rows)
    data = build_dataset([(d / "data.csv", {lab: LABELS.index(lab) for lab in LABELS})], seed=1)
    cfg = TrainConfig(epochs=10, batch_size=16, lr=5e-3, hidden_size=32, num_layers=1,
                      num_heads=2, intermediate_size=64, vocab_size=300, max_length=16,
                      threads=1, patience=5)
    res = train(data, d / "hf", cfg, progress=False, log=lambda *_: None)
    meta = export_model(d / "hf", d / "onnx", eval_texts=[e.text for e in data.test],
                        eval_labels=[e.label for e in data.test], info={"max_length": 16},
                        log=lambda *_: None)
    return d, data, res, meta


def test_export_writes_model_dir(tiny_run):
    d, _, _, meta = tiny_run
    assert meta["labels"] == list(LABELS)
    for name in ("model.onnx", "model.int8.onnx", "tokenizer.json", "moodtune.json",
                 "README.md", "confusion.png", "training_curve.png"):
        assert (d / "onnx" / name).exists(), name
    saved = json.loads((d / "onnx" / "moodtune.json").read_text())
    assert saved["labels"] == list(LABELS)
    assert saved["metrics"]["onnx_vs_torch_max_abs_diff"] < 1e-4
    assert 0.0 <= saved["metrics"]["int8_agreement_with_fp32"] <= 1.0
    assert "macro_f1" in saved["metrics"]["test_int8"]


def test_tiny_model_learns_and_onnx_matches_torch(tiny_run):
    d, data, res, _ = tiny_run
    assert res.best["macro_f1"] > 0.5  # 6 classes: chance is ~0.17
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(d / "hf")
    tok = AutoTokenizer.from_pretrained(d / "hf")
    texts = [e.text for e in data.test]
    pt = torch.softmax(torch.tensor(predict_logits(model, tok, texts, 16)), -1).numpy()
    clf = EmotionClassifier.load(d / "onnx", variant="fp32")
    ox = clf.predict(texts)
    assert np.abs(pt - ox).max() < 1e-4
    i8 = EmotionClassifier.load(d / "onnx", variant="int8").predict(texts)
    assert i8.shape == (len(texts), 6)
    assert np.allclose(i8.sum(1), 1.0, atol=1e-5)
    assert np.mean(i8.argmax(1) == ox.argmax(1)) > 0.8


def test_resume_continues_after_last_epoch(tmp_path, tiny_run):
    _, data, _, _ = tiny_run
    cfg = TrainConfig(epochs=3, batch_size=16, lr=5e-3, hidden_size=32, num_layers=1,
                      num_heads=2, intermediate_size=64, vocab_size=300, max_length=16,
                      threads=1, patience=5)

    def crash_in_epoch_2(msg: str) -> None:
        if msg.startswith("epoch 2:"):
            raise KeyboardInterrupt  # Ctrl-C after epoch 2 finished, before its checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path / "run", cfg, progress=False, log=crash_in_epoch_2)
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    logs: list[str] = []
    res = train(data, tmp_path / "run", cfg, progress=False, resume=True, log=logs.append)
    assert any(m.startswith("resumed from") and "after epoch 1" in m for m in logs)
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def _assert_serves_like_the_original(d, data, compacted_dir):
    """``compacted_dir/model.onnx`` (plus the original tokenizer/config) predicts like fp32."""
    for name in ("tokenizer.json", "moodtune.json"):
        (compacted_dir / name).write_bytes((d / "onnx" / name).read_bytes())
    texts = [e.text for e in data.test]
    full = EmotionClassifier.load(d / "onnx", variant="fp32").predict(texts)
    small = EmotionClassifier.load(compacted_dir, variant="fp32").predict(texts)
    assert np.abs(full - small).max() < 5e-2
    assert (full.argmax(1) == small.argmax(1)).mean() > 0.95


def test_compacted_fp32_graph_is_half_the_size_and_predicts_the_same(tmp_path, tiny_run):
    from training.export import compact_fp32_graph

    d, data, _, _ = tiny_run
    stats = compact_fp32_graph(d / "onnx" / "model.onnx", tmp_path / "model.onnx",
                               min_elements=64)
    assert stats["converted_tensors"] > 0
    assert stats["bytes_after"] < 0.7 * stats["bytes_before"]
    _assert_serves_like_the_original(d, data, tmp_path)


def test_distillation_trains_on_teacher_targets_and_unlabelled_texts(tmp_path, tiny_run):
    from training.classifier import teacher_logits

    d, data, _, _ = tiny_run
    unlabelled = [f"오늘 {w} 완전 {i}" for ws in WORDS.values() for w in ws for i in range(3)]
    soft = teacher_logits(d / "hf", [e.text for e in data.train] + unlabelled, 16, threads=1)
    assert all(v.shape == (6,) for v in soft.values())
    cfg = TrainConfig(epochs=10, batch_size=16, lr=5e-3, hidden_size=32, num_layers=1,
                      num_heads=2, intermediate_size=64, vocab_size=300, max_length=16,
                      threads=1, patience=5, distill_alpha=0.7)
    logs: list[str] = []
    res = train(data, tmp_path / "student", cfg, progress=False, soft_targets=soft,
                unlabelled=unlabelled, log=logs.append)
    assert any(f"+ {len(unlabelled)} unlabelled" in m for m in logs)
    assert res.best["macro_f1"] > 0.5


def test_lexical_teacher_is_out_of_fold_and_ensembles():
    from training.classifier import ensemble_targets, tfidf_probabilities
    from training.data import Example

    rng = random.Random(3)
    train = [Example(f"{rng.choice(ws)} {rng.choice(['오늘', '진짜', '너무'])} {i}",
                     LABELS.index(lab), "t")
             for lab, ws in WORDS.items() for i in range(30)]
    probs = tfidf_probabilities(train, ["새로운 문장 편안해"], folds=3)
    assert len(probs) == len(train) + 1
    p = np.stack([probs[e.text] for e in train])
    assert np.allclose(p.sum(1), 1.0)
    # out-of-fold: not a copy of the gold labels, but far better than chance
    acc = np.mean(p.argmax(1) == [e.label for e in train])
    assert acc > 0.5
    assert p.max(1).mean() < 0.99
    teacher = {t: np.zeros(6, np.float32) for t in probs}  # uniform teacher
    mixed = ensemble_targets(teacher, probs, 0.5)
    m = np.exp(mixed["새로운 문장 편안해"])
    assert np.allclose(m, 0.5 / 6 + 0.5 * probs["새로운 문장 편안해"], atol=1e-5)


def test_bias_calibration_raises_macro_f1_and_folds_into_the_model(tiny_run):
    from transformers import AutoModelForSequenceClassification

    from training.classifier import _macro_f1, apply_bias, calibrate_bias

    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 600)
    logits = rng.normal(size=(600, 6))
    logits[np.arange(600), y] += 1.0
    logits[:, 0] += 1.5  # a model that over-predicts class 0
    offsets, before, after = calibrate_bias(logits, y)
    assert after > before + 0.05
    assert offsets[0] < 0
    assert _macro_f1(y, (logits + offsets).argmax(1)) == pytest.approx(after)
    d, _, _, _ = tiny_run
    model = AutoModelForSequenceClassification.from_pretrained(d / "hf")
    b0 = model.classifier.bias.detach().clone()
    apply_bias(model, offsets)
    assert torch.allclose(model.classifier.bias - b0, torch.tensor(offsets, dtype=b0.dtype))


def test_int8_embedding_tables_shrink_the_fp32_graph_further(tmp_path, tiny_run):
    from training.export import compact_fp32_graph

    d, data, _, _ = tiny_run
    a = compact_fp32_graph(d / "onnx" / "model.onnx", tmp_path / "a.onnx", min_elements=64)
    b = compact_fp32_graph(d / "onnx" / "model.onnx", tmp_path / "model.onnx", min_elements=64,
                           int8_embeddings=True)
    assert b["bytes_after"] < a["bytes_after"]
    _assert_serves_like_the_original(d, data, tmp_path)


def test_train_only_rows_use_the_six_names_and_unknown_labels_stop_the_run(tmp_path, capsys):
    from bot.cli import main

    src = tmp_path / "data.csv"
    with src.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["sentence", "label"])
        for lab in ("행복", "분노", "슬픔", "중립", "공포"):
            w.writerows([[f"{lab} 문장 {i}", lab] for i in range(20)])
    bad = tmp_path / "own.csv"
    bad.write_text("sentence,label\n신나는 노래 틀어줘,기쁨\n떨려,nervous\n", encoding="utf-8")
    rc = main(["train-classifier", "--data", str(src), "--extra", "--train-only", str(bad),
               "--out", str(tmp_path / "never")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "'unmapped:nervous': 1" in err and "unmapped:기쁨" not in err  # 기쁨 is one of the six
    assert not (tmp_path / "never").exists()


def test_scratch_tokenizer_numbers_its_pieces_the_same_way_every_run():
    from training.classifier import train_tokenizer

    rng = random.Random(0)
    texts = [f"오늘 {rng.choice(ws)} 진짜 {i}" for ws in WORDS.values() for i in range(60)]
    a, b = (train_tokenizer(texts, 300).get_vocab() for _ in range(2))
    assert a == b
    assert [a[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]


def test_label_targets_say_the_examples_own_label():
    from training.classifier import label_targets
    from training.data import Example

    t = label_targets([Example("내일 회의 있어요", LABELS.index("중립"), "test")])["내일 회의 있어요"]
    p = np.exp(t)
    assert p.shape == (6,) and abs(p.sum() - 1) < 1e-6
    assert LABELS[int(p.argmax())] == "중립" and p.max() == pytest.approx(0.9)
