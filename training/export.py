"""Hugging Face model dir → the serving model dir (ONNX fp32 + int8, tokenizer, config, card).

Export is where a model can silently change: the ONNX graph is compared with PyTorch on real
sentences (max |Δlogit|) and the int8 graph is scored against fp32 on the held-out split, and both
numbers go into ``moodtune.json`` and the model card, so a bad export is visible, not shipped.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.emotions import EMOTIONS, LABELS
from training.classifier import evaluate_predictions, predict_logits

__all__ = ["ExportError", "compact_fp32_graph", "export_model"]


class ExportError(RuntimeError):
    """ONNX export or its verification failed; nothing was written to the output dir."""


def _onnx_logits(path: Path, tok_path: Path, texts: Sequence[str], max_length: int,
                 meta: dict) -> np.ndarray:
    """Logits through the real serving path (EmotionClassifier), re-ordered back to model order."""
    from inference.classifier import EmotionClassifier

    # Build a throwaway dir with the graph under test so the serving code path is what we measure.
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        shutil.copy(path, d / "model.onnx")
        shutil.copy(tok_path, d / "tokenizer.json")
        (d / "moodtune.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        clf = EmotionClassifier.load(d, variant="fp32", threads=2, batch_size=64)
        from inference.text import normalize_text

        cleaned = [normalize_text(t) or "." for t in texts]
        out = []
        for s in range(0, len(cleaned), 64):
            out.append(clf._run(cleaned[s : s + 64]))
        return np.concatenate(out)


def compact_fp32_graph(src: Path, dst: Path, *, min_elements: int = 1024,
                       int8_embeddings: bool = False) -> dict[str, Any]:
    """Store the fp32 graph's large weights as float16, cast back to float32 when loaded.

    Why: the repository ships the model and must stay small (the fp32 graph of even a compact
    encoder is ~40 MB), but the fp32 graph is still wanted beside the int8 one, as the
    reference the int8 accuracy is checked against and for CPUs without fast int8 kernels.
    onnxruntime folds each ``Cast(initializer)`` into a float32 constant when the session is
    built, so the graph *runs* exactly like an fp32 graph whose weights were rounded to fp16
    (a relative error of ~5e-4 per weight), at half the file size.

    ``int8_embeddings`` stores embedding tables (the data input of ``Gather``) as int8 with one
    float32 scale per row instead (``Cast`` + ``Mul``, also folded at load): the largest tensor
    of a model with a big vocabulary, shrunk 4x, still computed in float32 afterwards.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    casts = []
    kept = []
    converted = 0
    tables = {n.input[0] for n in graph.node if n.op_type == "Gather"} if int8_embeddings else set()
    for init in graph.initializer:
        if init.name in tables and init.data_type == onnx.TensorProto.FLOAT and len(init.dims) == 2:
            arr = numpy_helper.to_array(init).astype(np.float32)
            scale = np.maximum(np.abs(arr).max(axis=1, keepdims=True), 1e-12) / 127.0
            q = np.clip(np.round(arr / scale), -127, 127).astype(np.int8)
            kept += [numpy_helper.from_array(q, init.name + "__q8"),
                     numpy_helper.from_array(scale.astype(np.float32), init.name + "__scale")]
            casts += [helper.make_node("Cast", [init.name + "__q8"], [init.name + "__f"],
                                       to=onnx.TensorProto.FLOAT, name=init.name + "__cast"),
                      helper.make_node("Mul", [init.name + "__f", init.name + "__scale"],
                                       [init.name], name=init.name + "__dequant")]
            converted += 1
        elif init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            arr = numpy_helper.to_array(init)
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name],
                                          to=onnx.TensorProto.FLOAT,
                                          name=init.name + "__cast"))
            converted += 1
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return {"converted_tensors": converted, "bytes_before": src.stat().st_size,
            "bytes_after": dst.stat().st_size}


def export_model(
    hf_dir: str | Path,
    out_dir: str | Path,
    *,
    eval_texts: Sequence[str] = (),
    eval_labels: Sequence[int] = (),
    quantize: bool = True,
    compact: bool = False,
    info: dict[str, Any] | None = None,
    log=print,
) -> dict[str, Any]:
    """Export, verify, quantise and document. Writes into a temp dir, then renames into place.

    ``compact`` stores the fp32 graph's weights as float16 and its embedding tables as int8
    with per-row scales (see :func:`compact_fp32_graph`; computed in float32 all the same) after
    the int8 graph was quantised from the full-precision one; used for the shipped model, whose
    directory must stay small enough to live in the repository.
    """
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from optimum.exporters.onnx import main_export
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    info = dict(info or {})
    model = AutoModelForSequenceClassification.from_pretrained(hf_dir)
    tok = AutoTokenizer.from_pretrained(hf_dir)
    max_length = int(info.get("max_length") or min(getattr(tok, "model_max_length", 64), 512))
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    model_labels = [id2label[i] for i in range(len(id2label))]
    if sorted(model_labels) != sorted(LABELS):
        raise ExportError(f"model labels {model_labels} are not the six moods {list(LABELS)}")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".tmp-", dir=out_dir.parent))
    try:
        t0 = time.time()
        main_export(str(hf_dir), output=str(tmp / "onnx"), task="text-classification",
                    do_validation=False, no_post_process=False)
        shutil.move(tmp / "onnx" / "model.onnx", tmp / "model.onnx")
        tok_json = tmp / "onnx" / "tokenizer.json"
        if not tok_json.exists():
            tok_json = hf_dir / "tokenizer.json"
        shutil.copy(tok_json, tmp / "tokenizer.json")
        shutil.rmtree(tmp / "onnx", ignore_errors=True)
        log(f"exported ONNX in {time.time() - t0:.1f}s")

        meta: dict[str, Any] = {
            "format": 1,
            "model_id": uuid.uuid4().hex,
            "labels": model_labels,
            "labels_en": [EMOTIONS[LABELS.index(lab)].en for lab in model_labels],
            "max_length": max_length,
            "pad_token_id": int(tok.pad_token_id or 0),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **info,
        }
        # --- parity: PyTorch vs ONNX on real sentences --------------------------------
        probe = list(eval_texts[:256]) or ["오늘 너무 지치고 우울해", "기분 최고야", "그냥 그래"]
        torch.set_num_threads(2)
        pt = predict_logits(model, tok, probe, max_length)
        ox = _onnx_logits(tmp / "model.onnx", tmp / "tokenizer.json", probe, max_length, meta)
        max_diff = float(np.abs(pt - ox).max())
        log(f"ONNX vs PyTorch: max |Δlogit| = {max_diff:.2e} on {len(probe)} sentences")
        if max_diff > 1e-3:
            raise ExportError(f"ONNX logits differ from PyTorch by {max_diff:.3g} (> 1e-3)")
        metrics: dict[str, Any] = {"onnx_vs_torch_max_abs_diff": max_diff}

        if quantize:
            quantize_dynamic(str(tmp / "model.onnx"), str(tmp / "model.int8.onnx"),
                             weight_type=QuantType.QInt8, per_channel=True)
        if compact:
            full = tmp / "model.full.onnx"
            (tmp / "model.onnx").rename(full)
            metrics["fp32_compaction"] = compact_fp32_graph(full, tmp / "model.onnx",
                                                            int8_embeddings=True)
            full.unlink()
            ox16 = _onnx_logits(tmp / "model.onnx", tmp / "tokenizer.json", probe, max_length,
                                meta)
            metrics["fp16_stored_vs_torch_max_abs_diff"] = float(np.abs(pt - ox16).max())
            log(f"fp32 graph with fp16-stored weights (int8 embedding tables): max |Δlogit| vs "
                "PyTorch "
                f"{metrics['fp16_stored_vs_torch_max_abs_diff']:.2e}, "
                f"{metrics['fp32_compaction']['bytes_after'] / 1e6:.1f} MB")
        if len(eval_texts):
            y = list(eval_labels)
            full_pt = predict_logits(model, tok, list(eval_texts), max_length)
            metrics["test_torch"] = evaluate_predictions(y, full_pt.argmax(1))
            # model order -> LABELS order for the metric (labels are compared by name)
            perm = [model_labels.index(lab) for lab in LABELS]
            metrics["test_torch"] = evaluate_predictions(y, full_pt[:, perm].argmax(1))
            fp32 = _onnx_logits(tmp / "model.onnx", tmp / "tokenizer.json", eval_texts,
                                max_length, meta)
            metrics["test_fp32"] = evaluate_predictions(y, fp32[:, perm].argmax(1))
            if quantize:
                i8 = _onnx_logits(tmp / "model.int8.onnx", tmp / "tokenizer.json", eval_texts,
                                  max_length, meta)
                metrics["test_int8"] = evaluate_predictions(y, i8[:, perm].argmax(1))
                metrics["int8_agreement_with_fp32"] = float(
                    np.mean(i8.argmax(1) == fp32.argmax(1)))
                log(f"test macro-F1 fp32 {metrics['test_fp32']['macro_f1']:.4f} "
                    f"int8 {metrics['test_int8']['macro_f1']:.4f} "
                    f"(agreement {metrics['int8_agreement_with_fp32']:.4f})")
        meta["metrics"] = metrics
        meta["files"] = {p.name: p.stat().st_size for p in sorted(tmp.glob("*.onnx"))}
        (tmp / "moodtune.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2),
                                           encoding="utf-8")
        training_json = hf_dir / "training.json"
        training = json.loads(training_json.read_text()) if training_json.exists() else {}
        from training.report import write_model_card

        write_model_card(tmp, meta, training)
        # atomic-ish swap: old dir aside, new in, old removed
        old = out_dir.with_name(out_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
        return meta
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
