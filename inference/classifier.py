"""Sentence → 6-way emotion probabilities, with onnxruntime and tokenizers only.

The serving path must start fast and stay small (no torch, no transformers), so a model dir holds
an ONNX graph, a ``tokenizer.json`` and ``moodtune.json`` (label order, max length, provenance).
The model's own label order is mapped onto ``inference.emotions.LABELS`` here, once, at load.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from inference.emotions import LABELS, NUM_EMOTIONS, UnknownEmotionError, index_of
from inference.text import normalize_text

__all__ = [
    "EmotionClassifier",
    "ModelLoadError",
    "default_model_dir",
]

Variant = Literal["auto", "int8", "fp32"]


class ModelLoadError(RuntimeError):
    """The model dir is missing, incomplete or corrupt; the message says which file and what to do."""


def default_model_dir() -> Path:
    """The model shipped inside the package (trained by ``moodtune train-classifier``)."""
    return Path(str(resources.files("inference") / "models" / "default"))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class EmotionClassifier:
    """Thread-safe ONNX emotion classifier; ``predict`` returns (n, 6) rows summing to 1.

    Input contract (tested): blank text (empty, whitespace, zero-width only) returns the one-hot
    중립 vector without running the model — nothing was said, so no emotion was expressed; emoji are
    spelled out in words first (``inference.text``); text longer than the model's window is cut
    to its first ``max_length`` tokens; any script mix is fed to the tokenizer as is.
    """

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        meta: dict,
        *,
        model_dir: Path,
        variant: str,
        batch_size: int = 32,
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.meta = meta
        self.model_dir = model_dir
        self.variant = variant
        self.batch_size = max(1, int(batch_size))
        self.token_budget = 24 * self.batch_size  # padded tokens per ONNX call
        self.max_length = int(meta.get("max_length", 64))
        self._input_names = [i.name for i in session.get_inputs()]
        self._pad_id = int(meta.get("pad_token_id", tokenizer.token_to_id("[PAD]") or 0))
        model_labels = list(meta["labels"])
        # column j of our output = column perm[j] of the model's output
        self._perm = np.array([_model_column(model_labels, lab) for lab in LABELS], dtype=np.int64)
        self._neutral = np.zeros(NUM_EMOTIONS, dtype=np.float32)
        self._neutral[index_of("중립")] = 1.0
        self._fingerprint = hashlib.sha256(
            json.dumps({k: meta.get(k) for k in ("model_id", "labels", "created_at")},
                       sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()[:16]
        self._lock = threading.Lock()  # guards nothing hot; documents the intent for reload paths

    # ---- loading --------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        variant: Variant = "auto",
        threads: int = 1,
        batch_size: int = 32,
    ) -> EmotionClassifier:
        """Load a model dir (default: the shipped model).

        ``variant="auto"`` prefers the int8 graph when present: on CPUs with VNNI it is ~2× faster
        and its accuracy is checked against fp32 at export time (see the model card).
        ``threads`` is onnxruntime's intra-op thread count; 1 suits a bot that answers many users
        at once, more suits a batch job labelling lyrics.
        """
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_dir = Path(path) if path is not None else default_model_dir()
        if not model_dir.is_dir():
            raise ModelLoadError(
                f"model directory not found: {model_dir}. Pass the directory written by "
                "`moodtune export`, or leave MODEL_DIR unset to use the shipped model."
            )
        meta_path = model_dir / "moodtune.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            labels = meta["labels"]
            if sorted(index_of(lab) for lab in labels) != list(range(NUM_EMOTIONS)):
                raise ModelLoadError(
                    f"{meta_path}: labels {labels} must name each of {', '.join(LABELS)} once"
                )
        except FileNotFoundError as exc:
            raise ModelLoadError(f"{meta_path} is missing; re-run `moodtune export`") from exc
        except (json.JSONDecodeError, KeyError, TypeError, UnknownEmotionError) as exc:
            raise ModelLoadError(f"{meta_path} is not a valid moodtune model config: {exc}") from exc

        candidates = {"int8": model_dir / "model.int8.onnx", "fp32": model_dir / "model.onnx"}
        if variant == "auto":
            variant = "int8" if candidates["int8"].exists() else "fp32"
        onnx_path = candidates[variant]
        if not onnx_path.exists():
            raise ModelLoadError(f"{onnx_path} is missing; re-run `moodtune export`")
        tok_path = model_dir / "tokenizer.json"
        try:
            tokenizer = Tokenizer.from_file(str(tok_path))
        except Exception as exc:
            raise ModelLoadError(f"cannot read tokenizer {tok_path}: {exc}") from exc
        tokenizer.no_padding()
        tokenizer.no_truncation()

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(
                str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelLoadError(
                f"{onnx_path} could not be loaded (corrupt or truncated?): {exc}. "
                "Re-export it with `moodtune export` or reinstall the package."
            ) from exc
        n_out = session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(meta["labels"]):
            raise ModelLoadError(
                f"{onnx_path} outputs {n_out} classes but moodtune.json lists {len(meta['labels'])}"
            )
        return cls(session, tokenizer, meta, model_dir=model_dir, variant=variant,
                   batch_size=batch_size)

    # ---- prediction -----------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """Identifies the model family that produced a vector (stored in index metadata)."""
        return self._fingerprint

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Emotion probabilities for each text, shape (len(texts), 6), columns in LABELS order."""
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of strings; wrap a single sentence in a list")
        cleaned = [normalize_text(t) for t in texts]
        out = np.empty((len(cleaned), NUM_EMOTIONS), dtype=np.float32)
        live = [i for i, t in enumerate(cleaned) if t]
        for i in range(len(cleaned)):
            if not cleaned[i]:
                out[i] = self._neutral
        if not live:
            return out
        # Tokenise once, sort by token length, and cut the sorted list into chunks of at most
        # ``batch_size`` sentences and ``token_budget`` padded tokens: each ONNX call then pads
        # to a similar length, and a few long sentences no longer make 31 short ones pay for
        # their width (about 2x the throughput on chat-length text).
        encs = self._tokenizer.encode_batch([cleaned[i] for i in live])
        lens = [min(len(e.ids), self.max_length) for e in encs]
        order = sorted(range(len(live)), key=lens.__getitem__)
        budget = max(self.token_budget, self.max_length)
        chunk: list[int] = []
        for j in [*order, -1]:
            if chunk and (j < 0 or len(chunk) >= self.batch_size
                          or (len(chunk) + 1) * lens[j] > budget):
                logits = self._run_encoded([encs[k] for k in chunk])
                rows = [live[k] for k in chunk]
                out[rows] = _softmax(logits.astype(np.float32))[:, self._perm]
                chunk = []
            if j >= 0:
                chunk.append(j)
        return out

    def predict_one(self, text: str) -> np.ndarray:
        return self.predict([text])[0]

    def _run(self, texts: list[str]) -> np.ndarray:
        """Raw logits (model label order) for already-normalised texts, one ONNX call."""
        return self._run_encoded(self._tokenizer.encode_batch(texts))

    def _run_encoded(self, encs: list[Any]) -> np.ndarray:
        max_len = self.max_length
        width = min(max_len, max(len(e.ids) for e in encs))
        ids = np.full((len(encs), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for r, e in enumerate(encs):
            seq = e.ids
            if len(seq) > width:  # keep the closing special token when truncating
                seq = [*seq[: width - 1], seq[-1]]
            ids[r, : len(seq)] = seq
            mask[r, : len(seq)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        return self._session.run(None, feeds)[0]


def _model_column(model_labels: list[str], label: str) -> int:
    for j, name in enumerate(model_labels):
        if index_of(name) == index_of(label):
            return j
    raise ModelLoadError(f"model labels {model_labels} lack {label}")
