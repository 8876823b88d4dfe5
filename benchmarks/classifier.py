"""Classifier quality and speed on the held-out split, beside a TF-IDF baseline and PyTorch.

Quality: the shipped model (int8 and fp32 ONNX) on the test split it never trained on, scored on
all six labels and on the five the source corpus can express; in the same run, a character
n-gram TF-IDF + logistic-regression baseline trained on the same train split, with a paired
bootstrap interval for the gain. int8 is scored twice: in batches, and one sentence per call as
the bot serves it (dynamic quantisation makes the two differ slightly). A held-out probe of
music talk and everyday statements (``training/data/probe_ko.csv``) covers what the corpus
split cannot.
Speed: one-sentence latency p50/p99, batch-32 throughput and peak RSS (each in a fresh process)
for fp32 ONNX, int8 ONNX and the PyTorch model (when its training checkpoint is present).

    python -m benchmarks.classifier [--quick] [--hf-dir runs/classifier]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks import write_results
from training.evaluate import print_quality, quality, split

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


SPEED_CODE = r"""
import json, sys, time
import numpy as np
kind, model_dir, hf_dir, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = json.loads(sys.stdin.read())
if kind == "torch":
    import torch
    torch.set_num_threads(2)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    m = AutoModelForSequenceClassification.from_pretrained(hf_dir).eval()
    tok = AutoTokenizer.from_pretrained(hf_dir)
    def run(batch):
        with torch.inference_mode():
            enc = tok(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
            enc.pop("token_type_ids", None)
            return m(**enc).logits
else:
    from inference.classifier import EmotionClassifier
    clf = EmotionClassifier.load(None if model_dir == "-" else model_dir, variant=kind, threads=2)
    run = clf.predict
for t in texts[:20]:
    run([t])
lat = []
for t in texts[:n]:
    s = time.perf_counter(); run([t]); lat.append((time.perf_counter() - s) * 1000)
batches = [texts[i:i+32] for i in range(0, len(texts), 32)]
s = time.perf_counter(); done = 0
while time.perf_counter() - s < 3.0:
    for b in batches:
        run(b); done += len(b)
        if time.perf_counter() - s >= 3.0: break
tput = done / (time.perf_counter() - s)
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child started by a big
# parent would report the parent's peak.
rss = next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM")) / 1024
print(json.dumps({"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
                  "batch32_sent_per_s": tput, "peak_rss_mb": rss}))
"""


def speed(kind: str, texts: list[str], model_dir: Path | None, hf_dir: Path | None, n: int) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", SPEED_CODE, kind, str(model_dir or "-"), str(hf_dir or "-"), str(n)],
        input=json.dumps(texts, ensure_ascii=False), capture_output=True, text=True, cwd=ROOT,
        timeout=600)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr else "failed"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer latency samples")
    ap.add_argument("--model-dir", type=Path, default=None, help="default: shipped model")
    ap.add_argument("--hf-dir", type=Path, default=ROOT / "runs" / "classifier",
                    help="PyTorch checkpoint for the torch row (skipped when absent)")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    q = quality(args.seed, args.model_dir)
    data_texts = [e.text for e in split(args.seed).test][:2000]
    n = 300 if args.quick else 1000
    sp = {k: speed(k, data_texts, args.model_dir, None, n) for k in ("fp32", "int8")}
    if args.hf_dir and (args.hf_dir / "config.json").exists():
        sp["torch"] = speed("torch", data_texts, None, args.hf_dir, n)
    else:
        sp["torch"] = {"error": f"no PyTorch checkpoint at {args.hf_dir} (train one first)"}

    print_quality(q)
    print("\nSpeed on this machine (fresh process each; batch throughput at batch 32)")
    print(f"{'runtime':<10}{'p50 ms':>9}{'p99 ms':>9}{'sent/s':>10}{'peak RSS MB':>13}")
    for k, m in sp.items():
        if "error" in m:
            print(f"{k:<10}  {m['error']}")
            continue
        print(f"{k:<10}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['batch32_sent_per_s']:>10.0f}"
              f"{m['peak_rss_mb']:>13.0f}")
    if "error" not in sp.get("torch", {"error": 1}):
        print(f"int8 ONNX vs PyTorch throughput: "
              f"{sp['int8']['batch32_sent_per_s'] / sp['torch']['batch32_sent_per_s']:.1f}x")
    write_results(RESULTS / "classifier.json", {"quality": q, "speed": sp, "quick": args.quick})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
