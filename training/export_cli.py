"""``moodtune export`` — export a trained Hugging Face classifier dir to the serving format."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hf_dir", type=Path, help="dir written by `moodtune train-classifier`")
    parser.add_argument("--out", type=Path, default=Path("runs/classifier-onnx"))
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--no-quantize", action="store_true")
    parser.add_argument("--compact", action="store_true",
                        help="store the fp32 graph's weights as float16 (half the size)")
    parser.add_argument("--seed", type=int, default=42,
                        help="split seed: the held-out test split scored into the model card")
    parser.add_argument("--no-eval", action="store_true",
                        help="skip scoring on the held-out split (no shared data needed)")
    parser.add_argument("--notes", default=None,
                        help="a paragraph for the model card (e.g. how this model was derived)")
    parser.add_argument("--calibrate", action="store_true",
                        help="fit per-class logit offsets on the validation split (macro-F1) "
                             "and fold them into the model before exporting")


def run(args: argparse.Namespace) -> int:
    import json

    from training.export import export_model

    info: dict = {"max_length": args.max_length}
    if args.notes:
        info["notes"] = args.notes
    tj = args.hf_dir / "training.json"
    if tj.exists():
        cfg = json.loads(tj.read_text()).get("config", {})
        info["base"] = cfg.get("base") or f"compact/{cfg.get('init', 'scratch')}"
    texts: list[str] = []
    labels: list[int] = []
    if not args.no_eval:
        from training.data import (
            build_dataset,
            default_label_map_path,
            default_peace_path,
            load_label_map,
        )
        from training.paths import emotion_csv

        lmap = load_label_map(default_label_map_path())
        sources = [emotion_csv(), default_peace_path()]
        data = build_dataset([(p, lmap) for p in sources], seed=args.seed)
        texts, labels = [e.text for e in data.test], [e.label for e in data.test]
        raw_map = json.loads(default_label_map_path().read_text(encoding="utf-8"))
        info.update({"data_sources": [p.name for p in sources],
                     "label_map": {k: v for k, v in raw_map.items() if not k.startswith("_")},
                     "split": {"seed": args.seed, "val_frac": 0.1, "test_frac": 0.1}})
    if args.calibrate:
        if args.no_eval:
            print("moodtune export: --calibrate needs the validation split (drop --no-eval)")
            return 2
        info["calibration"] = calibrate(args.hf_dir, data.val, args.max_length)
    meta = export_model(args.hf_dir, args.out, quantize=not args.no_quantize,
                        compact=args.compact, eval_texts=texts, eval_labels=labels, info=info)
    print(f"exported {args.hf_dir} -> {args.out}: {meta['files']}")
    return 0


def calibrate(hf_dir: Path, val, max_length: int) -> dict:
    """Fit offsets on validation and save them into the HF model (idempotent: re-fits from
    the uncalibrated bias recorded in ``calibration.json``)."""
    import json

    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.classifier import apply_bias, calibrate_bias, predict_logits

    model = AutoModelForSequenceClassification.from_pretrained(hf_dir)
    tok = AutoTokenizer.from_pretrained(hf_dir)
    record = hf_dir / "calibration.json"
    if record.exists():  # undo an earlier calibration first
        apply_bias(model, -np.asarray(json.loads(record.read_text())["offsets"]))
    torch.set_num_threads(2)
    logits = predict_logits(model, tok, [e.text for e in val], max_length)
    offsets, before, after = calibrate_bias(logits, [e.label for e in val])
    apply_bias(model, offsets)
    model.save_pretrained(hf_dir)
    result = {"offsets": [round(float(x), 4) for x in offsets],
              "val_macro_f1_before": round(before, 4), "val_macro_f1_after": round(after, 4)}
    record.write_text(json.dumps(result), encoding="utf-8")
    print(f"calibrated on validation: macro-F1 {before:.4f} -> {after:.4f}, offsets "
          f"{result['offsets']}")
    return result
