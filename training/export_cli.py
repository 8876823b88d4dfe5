"""``moodtune export`` — export a trained Hugging Face classifier dir to the serving format."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hf_dir", type=Path, help="dir written by `moodtune train-classifier`")
    parser.add_argument("--out", type=Path, default=Path("runs/classifier-onnx"))
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--no-quantize", action="store_true")


def run(args: argparse.Namespace) -> int:
    import json

    from training.export import export_model

    info: dict = {"max_length": args.max_length}
    tj = args.hf_dir / "training.json"
    if tj.exists():
        info["base"] = json.loads(tj.read_text()).get("config", {}).get("base")
    meta = export_model(args.hf_dir, args.out, quantize=not args.no_quantize, info=info)
    print(f"exported {args.hf_dir} -> {args.out}: {meta['files']}")
    return 0
