"""``moodtune classify`` — the classifier demo: sentences in, six probabilities out.

It lives in bot/ (not inference/) because it reads the bot's settings: `classify` must run the
model the bot serves (MODEL_DIR, MODEL_VARIANT), and inference/ never imports bot/.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", help="sentences (default: read lines from stdin)")
    parser.add_argument("--model-dir", default=None,
                        help="model dir (default: MODEL_DIR from .env/environment, else the "
                             "shipped model)")
    parser.add_argument("--variant", choices=["auto", "int8", "fp32"], default=None,
                        help="graph to run (default: MODEL_VARIANT, else auto)")
    parser.add_argument("--json", action="store_true", help="print JSON lines")


def run(args: argparse.Namespace) -> int:
    import json

    from bot.settings import Settings
    from inference.classifier import EmotionClassifier, ModelLoadError
    from inference.emotions import EMOTIONS
    from inference.text import clean_text

    # The same model the bot serves: MODEL_DIR / MODEL_VARIANT unless a flag overrides them.
    settings = Settings()
    model_dir = args.model_dir or settings.model_dir
    variant = args.variant or settings.model_variant
    try:
        clf = EmotionClassifier.load(model_dir, variant=variant)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    texts = [clean_text(t) for t in (args.texts or [line.rstrip("\n") for line in sys.stdin])]
    probs = clf.predict(texts)
    for text, p in zip(texts, probs, strict=True):
        if args.json:
            print(json.dumps({"text": text, **{e.ko: round(float(p[e.index]), 4)
                                               for e in EMOTIONS}}, ensure_ascii=False))
            continue
        top = int(p.argmax())
        bars = "  ".join(f"{e.emoji}{e.ko} {p[e.index]:.2f}" for e in EMOTIONS)
        print(f"{EMOTIONS[top].emoji} {EMOTIONS[top].ko}  | {bars}  | {text}")
    return 0
