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


def run(args: argparse.Namespace) -> int:
    import json

    from training.export import export_model

    info: dict = {"max_length": args.max_length}
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
        info.update({"data_sources": [p.name for p in sources],
                     "split": {"seed": args.seed, "val_frac": 0.1, "test_frac": 0.1}})
    meta = export_model(args.hf_dir, args.out, quantize=not args.no_quantize,
                        compact=args.compact, eval_texts=texts, eval_labels=labels, info=info)
    print(f"exported {args.hf_dir} -> {args.out}: {meta['files']}")
    return 0
