"""Labelled sentences in, a reproducible stratified train/validation/test split out.

The benchmark and the model card must score the shipped model on sentences it never saw, so the
split is a pure function of (data, seed): anyone re-running it gets the same held-out set, and
its hash is recorded in the model's ``moodtune.json``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from inference.emotions import LABELS, UnknownEmotionError, index_of

__all__ = [
    "DataError",
    "Dataset",
    "Example",
    "default_label_map_path",
    "default_peace_path",
    "default_probe_path",
    "load_label_map",
    "load_labelled_csv",
    "read_probe",
    "read_texts",
    "split_stratified",
]


class DataError(ValueError):
    """Training data or a label map is unusable; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int  # column in inference.emotions.LABELS
    source: str


@dataclass
class Dataset:
    train: list[Example]
    val: list[Example]
    test: list[Example]
    dropped: Counter = field(default_factory=Counter)

    def describe(self) -> dict:
        def counts(xs: Sequence[Example]) -> dict[str, int]:
            c = Counter(LABELS[e.label] for e in xs)
            return {lab: c.get(lab, 0) for lab in LABELS}

        return {
            "train": counts(self.train),
            "val": counts(self.val),
            "test": counts(self.test),
            "test_sha256": hashlib.sha256(
                "\n".join(sorted(e.text for e in self.test)).encode()
            ).hexdigest(),
            "dropped": dict(self.dropped),
        }


def default_label_map_path() -> Path:
    return Path(str(resources.files("training") / "data" / "label_map_single_turn.json"))


def default_peace_path() -> Path:
    return Path(str(resources.files("training") / "data" / "peace_ko.csv"))


def default_probe_path() -> Path:
    """Held-out music-talk and everyday sentences (never trained on; see MUSIC.md)."""
    return Path(str(resources.files("training") / "data" / "probe_ko.csv"))


def read_probe(path: str | Path | None = None) -> list[tuple[str, int, str]]:
    """``(sentence, label index, topic)`` rows of the probe file."""
    p = Path(path) if path else default_probe_path()
    with p.open(encoding="utf-8", newline="") as fh:
        return [(r["sentence"], index_of(r["label"]), r["topic"]) for r in csv.DictReader(fh)]


def load_label_map(path: str | Path) -> dict[str, int]:
    """Source label → column of the six. Targets may be Korean or English names."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read label map {p}: {exc}") from exc
    out = {}
    for src, dst in raw.items():
        if src.startswith("_"):
            continue
        try:
            out[src] = index_of(dst)
        except UnknownEmotionError as exc:
            raise DataError(f"{p}: {src!r} maps to {exc}") from exc
    return out


def load_labelled_csv(
    path: str | Path,
    label_map: dict[str, int],
    *,
    text_column: str = "sentence",
    label_column: str = "label",
    source: str | None = None,
    dropped: Counter | None = None,
) -> list[Example]:
    """Read ``sentence,label`` rows, mapping labels; unmapped labels are counted, not fatal."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"training data not found: {p}")
    out: list[Example] = []
    with p.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or text_column not in reader.fieldnames or \
                label_column not in reader.fieldnames:
            raise DataError(f"{p}: needs columns {text_column!r} and {label_column!r}, "
                            f"has {reader.fieldnames}")
        for row in reader:
            text = (row[text_column] or "").strip()
            lab = (row[label_column] or "").strip()
            if not text:
                if dropped is not None:
                    dropped["empty"] += 1
                continue
            if lab not in label_map:
                if dropped is not None:
                    dropped[f"unmapped:{lab}"] += 1
                continue
            out.append(Example(text, label_map[lab], source or p.name))
    return out


def read_texts(path: str | Path) -> list[str]:
    """Unlabelled texts from a KOTE-style TSV (id, text, labels), a CSV or a text file."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"text file not found: {p}")
    out: list[str] = []
    with p.open(encoding="utf-8-sig", newline="") as fh:
        if p.suffix == ".tsv":
            for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) >= 2 and row[1].strip():
                    out.append(row[1].strip())
        elif p.suffix == ".csv":
            reader = csv.DictReader(fh)
            col = "sentence" if "sentence" in (reader.fieldnames or ()) else "text"
            out = [r[col].strip() for r in reader if (r.get(col) or "").strip()]
        else:
            out = [ln.strip() for ln in fh if ln.strip()]
    return out


def dedupe(examples: Iterable[Example], dropped: Counter | None = None) -> list[Example]:
    """Drop exact duplicate texts (first wins) so no sentence sits in two splits."""
    seen: set[str] = set()
    out = []
    for e in examples:
        if e.text in seen:
            if dropped is not None:
                dropped["duplicate"] += 1
            continue
        seen.add(e.text)
        out.append(e)
    return out


def split_stratified(
    examples: Sequence[Example], *, val_frac: float = 0.1, test_frac: float = 0.1, seed: int = 42
) -> tuple[list[Example], list[Example], list[Example]]:
    """Per-class shuffled split; deterministic for a given input order and seed."""
    by_label: dict[int, list[Example]] = defaultdict(list)
    for e in examples:
        by_label[e.label].append(e)
    rng = random.Random(seed)
    train, val, test = [], [], []
    for lab in sorted(by_label):
        xs = sorted(by_label[lab], key=lambda e: e.text)
        rng.shuffle(xs)
        n_test = round(len(xs) * test_frac)
        n_val = round(len(xs) * val_frac)
        test += xs[:n_test]
        val += xs[n_test : n_test + n_val]
        train += xs[n_test + n_val :]
    rng.shuffle(train)
    return train, val, test


def build_dataset(
    sources: Sequence[tuple[Path, dict[str, int]]],
    *,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    seed: int = 42,
) -> Dataset:
    dropped: Counter = Counter()
    examples: list[Example] = []
    for path, lmap in sources:
        examples += load_labelled_csv(path, lmap, dropped=dropped)
    examples = dedupe(examples, dropped)
    if not examples:
        raise DataError("no usable training examples after label mapping")
    tr, va, te = split_stratified(examples, val_frac=val_frac, test_frac=test_frac, seed=seed)
    return Dataset(tr, va, te, dropped)
