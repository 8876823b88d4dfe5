"""``moodtune eval`` — the classifier's quality report: held-out split vs a TF-IDF baseline,
and the probe. What ``benchmarks/classifier.py`` prints before its speed section, without the
minutes of timing runs (needs the ``[train]`` extra for the baseline)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="classifier to evaluate (default: the shipped model)")
    parser.add_argument("--seed", type=int, default=42, help="split seed (the training one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")


def run(args: argparse.Namespace) -> int:
    import sys

    from training.evaluate import print_quality, quality

    try:
        q = quality(args.seed, args.model_dir)
    except FileNotFoundError as exc:
        print(f"moodtune eval: {exc} (the emotion corpus lives in ../shared/data/emotion; "
              "set MOODTUNE_SHARED to its parent folder)", file=sys.stderr)
        return 2
    print_quality(q)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(q, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0
