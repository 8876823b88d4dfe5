"""``moodtune train-classifier`` — train (and by default export) the emotion classifier."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def configure(parser: argparse.ArgumentParser) -> None:
    from training.data import default_label_map_path, default_peace_path
    from training.paths import emotion_csv

    parser.add_argument("--data", type=Path, default=emotion_csv(),
                        help="labelled CSV (sentence,label); default: shared 7-emotion corpus")
    parser.add_argument("--label-map", type=Path, default=default_label_map_path(),
                        help="JSON: source label -> one of the six")
    parser.add_argument("--extra", type=Path, nargs="*", default=[default_peace_path()],
                        help="more labelled CSVs mapped with the same label map (default: 평화 set)")
    parser.add_argument("--train-only", type=Path, nargs="*", default=[],
                        help="labelled CSVs added to the training split only (the validation "
                             "and test splits stay those of --data/--extra), e.g. "
                             "training/data/neutral_ko.csv")
    parser.add_argument("--train-only-repeat", type=int, default=1,
                        help="how many times each --train-only sentence is shown per epoch")
    parser.add_argument("--base", default=None,
                        help="HF checkpoint to fine-tune (e.g. klue/roberta-large, must be cached)")
    parser.add_argument("--init", choices=["scratch", "e5"], default="e5",
                        help="compact model init when --base is not given")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--optimizer", choices=["adamw", "adafactor"], default=None)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/classifier"),
                        help="Hugging Face model dir written by training")
    parser.add_argument("--export-to", type=Path, default=Path("runs/classifier-onnx"),
                        help="serving model dir (ONNX); use inference/models/default to ship")
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--compact", action="store_true",
                        help="store the fp32 graph's weights as float16 (half the size; used "
                             "for the shipped model)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="distil from this trained HF model dir (e.g. a 12-layer run)")
    parser.add_argument("--distill-alpha", type=float, default=0.7,
                        help="weight of the distillation loss when --teacher is given")
    parser.add_argument("--lexical-teacher", type=float, default=0.0, metavar="WEIGHT",
                        help="mix a char n-gram TF-IDF model (out-of-fold on the training split) "
                             "into the teacher's targets with this weight (0 = off)")
    parser.add_argument("--unlabelled", type=Path, nargs="*", default=None,
                        help="transfer texts for distillation (.tsv KOTE id<TAB>text<TAB>labels, "
                             ".csv with a sentence column, or .txt lines); default: KOTE val+test")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--warmup", type=float, default=0.06, help="warm-up fraction of steps")


def run(args: argparse.Namespace) -> int:
    from training.classifier import TrainConfig, train
    from training.data import build_dataset, load_label_map

    lmap = load_label_map(args.label_map)
    sources = [(args.data, lmap)] + [(p, lmap) for p in args.extra]
    data = build_dataset(sources, seed=args.seed)
    if args.train_only:
        from collections import Counter

        from inference.emotions import LABELS
        from training.data import DataError, load_labelled_csv

        # The project's own sets are written in the six moods' names; source-corpus labels
        # still go through the map. A row that maps nowhere is an error here, not a silent
        # drop: these files are small and every row was written on purpose.
        own = {**{name: i for i, name in enumerate(LABELS)}, **lmap}
        held = {e.text for e in data.val} | {e.text for e in data.test}
        dropped: Counter = Counter()
        try:
            per_file = {p.name: [e for e in load_labelled_csv(p, own, dropped=dropped)
                             if e.text not in held] for p in args.train_only}
            extra = [e for rows in per_file.values() for e in rows]
            if any(k.startswith("unmapped:") for k in dropped):
                raise DataError(f"--train-only rows with unknown labels {dict(dropped)}: use "
                                f"one of {', '.join(LABELS)} or a label of {args.label_map}")
        except DataError as exc:
            print(f"moodtune train-classifier: {exc}", file=sys.stderr)
            return 2
        data.train = data.train + extra * max(1, args.train_only_repeat)
        print(f"training-only sentences: {len(extra)} x{max(1, args.train_only_repeat)}")
    seed_recipe = args.base and "roberta" in args.base  # the seed project's recipe for big models
    cfg = TrainConfig(
        base=args.base, init=args.init, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr or (1e-6 if seed_recipe else (1e-4 if args.init == "e5" or args.base else 5e-4)),
        optimizer=args.optimizer or ("adafactor" if seed_recipe else "adamw"),
        max_length=args.max_length, num_layers=args.layers or (4 if args.init == "e5" else 3),
        hidden_size=args.hidden, patience=args.patience, seed=args.seed, threads=args.threads,
        dropout=args.dropout, warmup_frac=args.warmup)
    if args.train_only:
        cfg.extra["train_only"] = {"files": {k: len(v) for k, v in per_file.items()},
                                   "repeat": max(1, args.train_only_repeat)}
    parent = lineage(args.base)
    if parent:
        cfg.extra["parent"] = parent
    soft, unlabelled = None, []
    if args.teacher is not None:
        from training.classifier import teacher_logits
        from training.data import read_texts
        from training.paths import kote_dir

        paths = args.unlabelled if args.unlabelled is not None else sorted(
            kote_dir().glob("*.tsv"))
        test_texts = {e.text for e in data.test} | {e.text for e in data.val}
        unlabelled = [t for p in paths for t in read_texts(p) if t not in test_texts]
        texts = [e.text for e in data.train] + unlabelled
        print(f"teacher {args.teacher}: scoring {len(texts)} texts")
        val_texts = [e.text for e in data.val]
        soft = teacher_logits(args.teacher, texts + val_texts, args.max_length,
                              threads=args.threads)
        _report_teacher("teacher", soft, data.val)
        if args.lexical_teacher > 0:
            from training.classifier import ensemble_targets, tfidf_probabilities

            lexical = tfidf_probabilities(data.train, unlabelled + val_texts, seed=args.seed)
            _report_teacher("lexical", {t: np.log(p + 1e-8) for t, p in lexical.items()},
                            data.val)
            soft = ensemble_targets(soft, lexical, args.lexical_teacher)
            _report_teacher(f"ensemble (lexical weight {args.lexical_teacher})", soft, data.val)
            cfg.extra["lexical_teacher_weight"] = args.lexical_teacher
        if args.train_only:
            from training.classifier import label_targets

            # The contrast sets exist because the teacher reads them the old, wrong way
            # (everyday statements and song talk as 평화): their targets are their own labels.
            soft.update(label_targets(extra))
        cfg.distill_alpha = args.distill_alpha
        cfg.extra.update(teacher=describe_checkpoint(args.teacher),
                         unlabelled_sources=[p.name for p in paths])
    result = train(data, args.out, cfg, resume=args.resume, soft_targets=soft,
                   unlabelled=unlabelled)
    print(f"best epoch {result.best.get('epoch')}: val macro-F1 {result.best['macro_f1']:.4f} "
          f"({result.seconds:.0f}s) -> {result.model_dir}")
    if args.no_export:
        return 0
    from training.export import export_model

    meta = export_model(
        args.out, args.export_to, compact=args.compact,
        eval_texts=[e.text for e in data.test], eval_labels=[e.label for e in data.test],
        info={"max_length": args.max_length, "base": args.base or f"compact/{args.init}",
              "data_sources": [str(p.name) for p, _ in sources],
              "label_map": {k: v for k, v in _read_map(args.label_map).items()},
              "split": {"seed": args.seed, "val_frac": 0.1, "test_frac": 0.1},
              "train_seconds": round(result.seconds, 1)})
    print(f"exported -> {args.export_to} (test macro-F1 int8 "
          f"{meta['metrics'].get('test_int8', {}).get('macro_f1', float('nan')):.4f})")
    return 0


def lineage(base: str | Path | None) -> dict | None:
    """What a local ``--base`` checkpoint was trained from, read from its training.json.

    A fine-tune of our own student must not make the model card forget the distillation and
    data behind the weights it started from, so the record nests one level per stage.
    """
    import json

    if not base or not (Path(base) / "training.json").exists():
        return None
    t = json.loads((Path(base) / "training.json").read_text(encoding="utf-8"))
    cfg = t.get("config", {})
    extra = cfg.get("extra", {})
    return {"dir": str(base), "base": cfg.get("base"), "init": cfg.get("init"),
            "layers": t.get("layers"), "lr": cfg.get("lr"),
            "epochs": len(t.get("history", [])), "best": t.get("best"),
            "distillation": t.get("distillation"),
            "lexical_teacher_weight": extra.get("lexical_teacher_weight"),
            "train_only": extra.get("train_only"), "parent": extra.get("parent")}


def describe_checkpoint(path: Path) -> str:
    """``path (12-layer e5, 3 epochs, val macro-F1 0.6826)``: enough to recognise a teacher."""
    info = lineage(path)
    if not info:
        return str(path)
    best = info.get("best") or {}
    return (f"{path} ({info.get('layers') or '?'}-layer {info.get('init') or info.get('base')}, "
            f"{info.get('epochs')} epochs, val macro-F1 {best.get('macro_f1', float('nan')):.4f})")


def _report_teacher(name: str, soft: dict, val) -> None:
    """Validation macro-F1 of a teacher's targets: is the teacher worth distilling from?"""
    from training.classifier import evaluate_predictions

    pred = [int(np.argmax(soft[e.text])) for e in val]
    m = evaluate_predictions([e.label for e in val], pred)
    print(f"{name} on validation: accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f}")


def _read_map(path: Path) -> dict:
    import json

    return {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items()
            if not k.startswith("_")}
