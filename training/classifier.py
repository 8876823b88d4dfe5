"""Train the emotion classifier: fine-tune a transformers checkpoint, or build a compact one.

Why both paths: users with a cached Korean checkpoint (e.g. ``klue/roberta-large``, the seed
project's choice) fine-tune it directly; the repository itself must ship a model trained here,
offline, on two CPU cores — so the default path builds a small encoder (optionally initialised from
a bundled pretrained multilingual encoder, see ``training.e5_import``) and trains it with the same
loop. Either way the output is a Hugging Face model dir that ``training.export`` turns into ONNX.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.emotions import LABELS, NUM_EMOTIONS
from training.data import Dataset, Example

__all__ = ["TrainConfig", "TrainResult", "evaluate_predictions", "train"]


@dataclass
class TrainConfig:
    """Every knob of a training run; stored verbatim in the model's ``moodtune.json``."""

    base: str | None = None  # HF checkpoint name/path; None = compact model built here
    init: str = "scratch"  # for base=None: "scratch" | "e5" (bundled multilingual-e5-small)
    epochs: int = 6
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_frac: float = 0.06
    optimizer: str = "adamw"  # "adamw" | "adafactor"
    label_smoothing: float = 0.05
    max_length: int = 64
    patience: int = 2
    seed: int = 42
    threads: int = 2
    # compact-model shape (base=None)
    hidden_size: int = 256
    num_layers: int = 3
    num_heads: int = 4
    intermediate_size: int = 1024
    vocab_size: int = 12000
    dropout: float = 0.1
    # distillation: teacher logits per text (labelled and unlabelled), weight and temperature
    distill_alpha: float = 0.0
    distill_temperature: float = 2.0
    eval_every: int = 0  # steps; 0 = once per epoch
    class_weights: bool = True
    extra: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    model_dir: Path
    history: list[dict]
    best: dict
    seconds: float


def _set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def evaluate_predictions(y_true: Sequence[int], y_pred: Sequence[int],
                         labels: Sequence[int] | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1 and the per-class table, over ``labels`` (default: all six)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(range(NUM_EMOTIONS)) if labels is None else list(labels)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(f)),
        "per_class": {LABELS[c]: {"precision": float(p[i]), "recall": float(r[i]),
                                  "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(labels)},
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": [LABELS[c] for c in labels],
    }


def train_tokenizer(texts: Sequence[str], vocab_size: int, out_path: Path | None = None):
    """WordPiece over whitespace words, trained on our own corpus (no hub needed)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=50))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=specials)
    tok.train_from_iterator(list(texts), trainer)
    # The trainer learns the same pieces every run but numbers them in hash-map order, so two
    # runs with the same seed got different embedding rows (and a tiny model's score swung with
    # it). Number them canonically: specials first, then the pieces in sorted order.
    pieces = sorted(t for t in tok.get_vocab() if t not in specials)
    tok.model = models.WordPiece({t: i for i, t in enumerate([*specials, *pieces])},
                                 unk_token="[UNK]", max_input_chars_per_word=50)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok.decoder = decoders.WordPiece()
    if out_path is not None:
        tok.save(str(out_path))
    return tok


def _wrap_fast_tokenizer(tok, model_max_length: int):
    from transformers import PreTrainedTokenizerFast

    specials = {}
    vocab = tok.get_vocab()
    for attr, cands in {"pad_token": ["[PAD]", "<pad>"], "unk_token": ["[UNK]", "<unk>"],
                        "cls_token": ["[CLS]", "<s>"], "sep_token": ["[SEP]", "</s>"],
                        "mask_token": ["[MASK]", "<mask>"]}.items():
        for c in cands:
            if c in vocab:
                specials[attr] = c
                break
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length,
                                   **specials)


def build_model(cfg: TrainConfig, train_texts: Sequence[str]):
    """Return (model, fast tokenizer) for the configured base/init."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
    )

    id2label = dict(enumerate(LABELS))
    label2id = {v: k for k, v in id2label.items()}
    if cfg.base:
        tok = AutoTokenizer.from_pretrained(cfg.base)
        model = AutoModelForSequenceClassification.from_pretrained(
            cfg.base, num_labels=NUM_EMOTIONS, id2label=id2label, label2id=label2id,
            ignore_mismatched_sizes=True)
        return model, tok
    if cfg.init == "e5":
        from training.e5_import import build_pretrained_classifier

        return build_pretrained_classifier(
            train_texts, num_layers=cfg.num_layers, id2label=id2label, max_length=cfg.max_length,
            dropout=cfg.dropout)
    raw = train_tokenizer(train_texts, cfg.vocab_size)
    tok = _wrap_fast_tokenizer(raw, cfg.max_length)
    config = BertConfig(
        vocab_size=raw.get_vocab_size(), hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_length + 2,
        hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
        num_labels=NUM_EMOTIONS, id2label=id2label, label2id=label2id,
        pad_token_id=raw.token_to_id("[PAD]"))
    return BertForSequenceClassification(config), tok


def _batches(n: int, bs: int, rng: np.random.Generator | None):
    idx = rng.permutation(n) if rng is not None else np.arange(n)
    for s in range(0, n, bs):
        yield idx[s : s + bs]


def predict_logits(model, tok, texts: Sequence[str], max_length: int, bs: int = 128) -> np.ndarray:
    import torch

    from inference.text import normalize_text

    model.eval()
    if not len(texts):
        return np.zeros((0, NUM_EMOTIONS), np.float32)
    cleaned = [normalize_text(t) or "." for t in texts]
    # Length-sorted batches pad far less (scoring a 37k-text transfer set is 3x faster).
    order = np.argsort([len(t) for t in cleaned], kind="stable")
    out = np.zeros((len(cleaned), NUM_EMOTIONS), np.float32)
    keep_types = "token_type_ids" in _forward_args(model)
    with torch.inference_mode():
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            enc = tok([cleaned[i] for i in idx], padding=True, truncation=True,
                      max_length=max_length, return_tensors="pt")
            if not keep_types:
                enc.pop("token_type_ids", None)
            out[idx] = model(**enc).logits.float().numpy()
    return out


def teacher_logits(hf_dir: str | Path, texts: Sequence[str], max_length: int,
                   threads: int = 2) -> dict[str, np.ndarray]:
    """A trained model's logits per text, the targets a smaller student is distilled towards."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(threads)
    model = AutoModelForSequenceClassification.from_pretrained(hf_dir)
    tok = AutoTokenizer.from_pretrained(hf_dir)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if labels != list(LABELS):
        raise ValueError(f"teacher labels {labels} are not in LABELS order {list(LABELS)}")
    uniq = list(dict.fromkeys(texts))
    logits = predict_logits(model, tok, uniq, max_length)
    return dict(zip(uniq, logits, strict=True))


def tfidf_probabilities(train: Sequence[Example], others: Sequence[str], *, folds: int = 5,
                        seed: int = 42) -> dict[str, np.ndarray]:
    """Character n-gram TF-IDF + logistic-regression probabilities, as a second teacher.

    Why: on this corpus the lexical model and the transformer make different mistakes, so their
    average is a better teacher than either; the student stays a pure transformer. Training
    texts get *out-of-fold* probabilities (each from a model that never saw it), otherwise
    the lexical teacher would just echo the gold labels; ``others`` (validation, unlabelled)
    are scored by a model fitted on all of ``train``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    def fit(xs: Sequence[str], ys: np.ndarray):
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True)
        clf = LogisticRegression(C=3, max_iter=3000, class_weight="balanced")
        clf.fit(vec.fit_transform(xs), ys)
        if list(clf.classes_) != list(range(NUM_EMOTIONS)):
            raise ValueError("the TF-IDF teacher needs examples of all six classes")
        return vec, clf

    texts = [e.text for e in train]
    y = np.array([e.label for e in train])
    oof = np.zeros((len(texts), NUM_EMOTIONS))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, y):
        vec, clf = fit([texts[i] for i in tr], y[tr])
        oof[te] = clf.predict_proba(vec.transform([texts[i] for i in te]))
    out = dict(zip(texts, oof, strict=True))
    rest = [t for t in dict.fromkeys(others) if t not in out]
    if rest:
        vec, clf = fit(texts, y)
        out.update(zip(rest, clf.predict_proba(vec.transform(rest)), strict=True))
    return out


def ensemble_targets(teacher: dict[str, np.ndarray], lexical: dict[str, np.ndarray],
                     weight: float) -> dict[str, np.ndarray]:
    """log of ``(1 - weight) · softmax(teacher) + weight · lexical`` per text (as logits)."""
    out = {}
    for t, logit in teacher.items():
        z = np.exp(logit - logit.max())
        p = (1 - weight) * z / z.sum() + weight * lexical[t]
        out[t] = np.log(np.maximum(p, 1e-8)).astype(np.float32)
    return out


def label_targets(examples: Sequence[Example], *, confidence: float = 0.9) -> dict[str, np.ndarray]:
    """Distillation targets (as logits) that simply say each example's own label.

    For texts the teacher is known to read wrongly, such as the written contrast sets.
    """
    out = {}
    for e in examples:
        p = np.full(NUM_EMOTIONS, (1 - confidence) / (NUM_EMOTIONS - 1), dtype=np.float32)
        p[e.label] = confidence
        out[e.text] = np.log(p)
    return out


def _macro_f1(y: np.ndarray, pred: np.ndarray, labels: Sequence[int] | None = None) -> float:
    """Macro-F1 over ``labels`` (default: all six) from one bincount.

    Calibration and the benchmark's bootstrap need thousands of these, so no sklearn call; same
    definition as sklearn with ``labels=``: a prediction outside ``labels`` still costs the true
    class its recall.
    """
    labels = list(range(NUM_EMOTIONS)) if labels is None else list(labels)
    cm = np.bincount(y * NUM_EMOTIONS + pred, minlength=NUM_EMOTIONS**2).reshape(
        NUM_EMOTIONS, NUM_EMOTIONS).astype(np.float64)
    tp = np.diag(cm)[labels]
    denom = (cm.sum(0) + cm.sum(1))[labels]
    return float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))


def calibrate_bias(logits: np.ndarray, labels: Sequence[int], *, rounds: int = 3,
                   grid: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """Per-class logit offsets that maximise validation macro-F1 (coordinate ascent).

    Why: training minimises cross-entropy, which favours the frequent classes; the product is
    judged per mood, and a reply about a rare mood (중립, 평화) matters as much as one about a
    frequent one. Six numbers fitted on the validation split move the decision boundaries
    without touching the encoder. Returns (offsets, macro-F1 before, after).
    """
    y = np.asarray(labels, dtype=np.int64)
    z = np.asarray(logits, dtype=np.float64)
    grid = np.linspace(-1.5, 1.5, 31) if grid is None else grid
    bias = np.zeros(NUM_EMOTIONS)
    before = best = _macro_f1(y, z.argmax(1))
    for _ in range(rounds):
        improved = False
        for c in range(NUM_EMOTIONS):
            for g in grid:
                trial = bias.copy()
                trial[c] = g
                f = _macro_f1(y, (z + trial).argmax(1))
                if f > best + 1e-9:
                    best, bias, improved = f, trial, True
        if not improved:
            break
    return bias, before, best


def apply_bias(model, bias: np.ndarray) -> None:
    """Add ``bias`` to the classification layer's bias (so the exported graph carries it)."""
    import torch

    head = getattr(model, "classifier", None)
    head = getattr(head, "out_proj", head)
    if not isinstance(head, torch.nn.Linear) or head.out_features != len(bias):
        raise ValueError("cannot find the classification layer to calibrate")
    with torch.no_grad():
        head.bias += torch.as_tensor(bias, dtype=head.bias.dtype)


def _forward_args(model) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def train(
    data: Dataset,
    out_dir: Path,
    cfg: TrainConfig,
    *,
    soft_targets: dict[str, np.ndarray] | None = None,
    unlabelled: Sequence[str] = (),
    progress: bool = True,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Fine-tune with early stopping on validation macro-F1; saves the best epoch to ``out_dir``."""
    import torch
    from tqdm.auto import tqdm

    from inference.text import normalize_text

    _set_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    t0 = time.time()
    train_ex: list[Example] = list(data.train)
    # The (pruned) vocabulary covers the transfer texts too, so distillation can teach them.
    model, tok = build_model(cfg, [normalize_text(e.text) for e in train_ex]
                             + [normalize_text(t) for t in unlabelled])
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {type(model).__name__}, {n_params / 1e6:.2f}M parameters, "
        f"{len(train_ex)} train / {len(data.val)} val / {len(data.test)} test sentences")

    texts = [normalize_text(e.text) or "." for e in train_ex]
    y = np.array([e.label for e in train_ex])
    soft = None
    distillation: dict | None = None
    if soft_targets is not None and cfg.distill_alpha > 0:
        # Distillation: every labelled text has a teacher target; unlabelled texts (a transfer
        # set, e.g. KOTE comments) only have that, and are ignored by the hard-label loss.
        extra = [t for t in unlabelled if t in soft_targets]
        soft = np.stack([soft_targets[e.text] for e in train_ex]
                        + [soft_targets[t] for t in extra]).astype(np.float32)
        texts += [normalize_text(t) or "." for t in extra]
        y = np.concatenate([y, np.full(len(extra), -100)])
        distillation = {"teacher": cfg.extra.get("teacher"), "unlabelled": len(extra),
                        "unlabelled_sources": cfg.extra.get("unlabelled_sources", [])}
        log(f"distilling: {len(train_ex)} labelled + {len(extra)} unlabelled texts, "
            f"alpha {cfg.distill_alpha}, T {cfg.distill_temperature}")
    counts = np.bincount(y[y >= 0], minlength=NUM_EMOTIONS).astype(np.float64)
    weights = None
    if cfg.class_weights:
        w = counts.sum() / np.maximum(counts, 1) / NUM_EMOTIONS
        weights = torch.tensor(np.clip(w, 0.25, 4.0), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)

    steps_per_epoch = math.ceil(len(texts) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        opt = Adafactor(model.parameters(), lr=cfg.lr, scale_parameter=False, relative_step=False,
                        warmup_init=False, weight_decay=cfg.weight_decay)
    else:
        no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm")
        groups = [
            {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
             "weight_decay": cfg.weight_decay},
            {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
             "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=cfg.lr)
    warm = max(1, int(total * cfg.warmup_frac))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm)))

    fwd = _forward_args(model)
    val_texts = [e.text for e in data.val]
    val_y = [e.label for e in data.val]
    history: list[dict] = []
    best: dict = {"macro_f1": -1.0}
    best_state = None
    bad = 0
    rng = np.random.default_rng(cfg.seed)
    step = 0
    start_epoch = 0
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        # An interrupted run continues after its last finished epoch, same data order.
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        history, best, best_state, bad = ck["history"], ck["best"], ck["best_state"], ck["bad"]
        start_epoch, step = ck["epoch"], ck["step"]
        rng = np.random.default_rng(cfg.seed)
        for _ in range(start_epoch):
            rng.permutation(len(texts))
        log(f"resumed from {ckpt_path} after epoch {start_epoch}")
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        running, seen = 0.0, 0
        bar = tqdm(list(_batches(len(texts), cfg.batch_size, rng)), desc=f"epoch {epoch + 1}",
                   disable=not progress, leave=False)
        for bi in bar:
            enc = tok([texts[i] for i in bi], padding=True, truncation=True,
                      max_length=cfg.max_length, return_tensors="pt")
            if "token_type_ids" not in fwd:
                enc.pop("token_type_ids", None)
            logits = model(**enc).logits
            target = torch.tensor(y[bi])
            labelled = target >= 0
            # Unlabelled (transfer-set) rows only take the distillation loss below.
            loss = (loss_fn(logits[labelled], target[labelled]) if bool(labelled.any())
                    else logits.sum() * 0.0)
            if soft is not None:
                T = cfg.distill_temperature
                st = torch.softmax(torch.tensor(soft[bi]) / T, -1)
                kd = torch.nn.functional.kl_div(torch.log_softmax(logits / T, -1), st,
                                                reduction="batchmean") * T * T
                loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * kd
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            running += loss.item() * len(bi)
            seen += len(bi)
            bar.set_postfix(loss=f"{running / seen:.3f}")
        pred = predict_logits(model, tok, val_texts, cfg.max_length).argmax(1)
        m = evaluate_predictions(val_y, pred)
        rec = {"epoch": epoch + 1, "step": step, "train_loss": running / max(seen, 1),
               "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"],
               "seconds": time.time() - t0}
        history.append(rec)
        log(f"epoch {epoch + 1}: loss {rec['train_loss']:.4f} val acc {m['accuracy']:.4f} "
            f"macro-F1 {m['macro_f1']:.4f} ({rec['seconds']:.0f}s)")
        if m["macro_f1"] > best["macro_f1"]:
            best = {"epoch": epoch + 1, **{k: m[k] for k in ("accuracy", "macro_f1")}}
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bad = 0
        else:
            bad += 1
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "history": history, "best": best,
                    "best_state": best_state, "bad": bad, "epoch": epoch + 1, "step": step},
                   ckpt_path)
        if bad >= cfg.patience:
            log(f"early stopping: no val improvement for {cfg.patience} epochs")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    (out_dir / "training.json").write_text(json.dumps(
        {"config": asdict(cfg), "history": history, "best": best, "data": data.describe(),
         "parameters": n_params, "layers": getattr(model.config, "num_hidden_layers", None),
         "distillation": distillation},
        ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    ckpt_path.unlink(missing_ok=True)
    return TrainResult(out_dir, history, best, time.time() - t0)
