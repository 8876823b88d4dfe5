#!/usr/bin/env python3
"""Check training/data/peace_ko.csv (the hand-written 평화 sentences). Pure stdlib.

Prints row/style counts and length statistics, and fails (exit 1) when the file has
fewer than --min-rows rows, a bad header/label/style, exact or normalised duplicates,
near-duplicates (character 3-gram Jaccard above --jaccard), or a sentence that also
appears (after normalisation) in the source corpora we must not copy from.

    python training/data/check_peace.py
    python training/data/check_peace.py --csv other.csv --min-rows 900 --jaccard 0.7
    python training/data/check_peace.py --train none --kote none   # skip corpus overlap

Lexicon hints (words that usually signal 기쁨/슬픔/긴장/분노 instead of calm) are printed as
warnings for a human to look at; they never fail the check.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CSV = HERE / "peace_ko.csv"
DEFAULT_TRAIN = Path("/work/shared/data/emotion/single_turn_7emotions.csv")
DEFAULT_KOTE = Path("/work/shared/data/emotion/kote")

HEADER = ["sentence", "label", "style"]
LABEL = "평화"
STYLES = ("chat", "polite", "comment", "diary", "request")

# Substrings that suggest another class; printed for review only.
WARN_WORDS = {
    "기쁨?": ("신나", "신난", "대박", "최고", "짱", "설레", "행복", "!!"),
    "슬픔?": ("외롭", "외로", "허전", "쓸쓸", "눈물", "울었", "우울", "그립", "보고싶", "보고 싶"),
    "긴장?": ("불안", "무서", "두렵", "초조", "떨려"),
    "분노?": ("짜증", "화나", "빡치", "열받"),
}

_PUNCT = re.compile(r"[\s.,!?~…·'\"()\[\]:;/+\-^ㅋㅎㅠㅜ]+")


def normalise(text: str) -> str:
    """Compare form: no whitespace, punctuation or laughter/crying jamo, lower-case."""
    return _PUNCT.sub("", text).lower()


def trigrams(text: str) -> frozenset[str]:
    t = normalise(text)
    if len(t) < 3:
        return frozenset({t})
    return frozenset(t[i : i + 3] for i in range(len(t) - 2))


def read_rows(path: Path) -> tuple[list[str] | None, list[dict]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def corpus_sentences(train: Path | None, kote: Path | None) -> dict[str, str]:
    """normalised sentence -> where it came from (first seen)."""
    out: dict[str, str] = {}
    if train is not None and train.exists():
        with train.open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                s = (row.get("sentence") or "").strip()
                if s:
                    out.setdefault(normalise(s), train.name)
    if kote is not None and kote.is_dir():
        for tsv in sorted(kote.glob("*.tsv")):
            with tsv.open(encoding="utf-8") as fh:
                for line in fh:
                    parts = line.rstrip("\n").split("\t")
                    if len(parts) >= 2 and parts[1].strip():
                        out.setdefault(normalise(parts[1]), f"kote/{tsv.name}")
    out.pop("", None)
    return out


def near_duplicates(texts: list[str], threshold: float) -> list[tuple[float, int, int]]:
    grams = [trigrams(t) for t in texts]
    index: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(grams):
        for x in g:
            index[x].append(i)
    pairs = []
    for i, g in enumerate(grams):
        shared: Counter = Counter()
        for x in g:
            for j in index[x]:
                if j > i:
                    shared[j] += 1
        for j, inter in shared.items():
            union = len(g) + len(grams[j]) - inter
            jac = inter / union if union else 1.0
            if jac > threshold:
                pairs.append((jac, i, j))
    return sorted(pairs, reverse=True)


def pct(xs: list[int], q: float) -> int:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument(
        "--train",
        default=str(DEFAULT_TRAIN),
        help="single_turn CSV to check for copies; 'none' to skip",
    )
    ap.add_argument(
        "--kote",
        default=str(DEFAULT_KOTE),
        help="folder with KOTE *.tsv to check for copies; 'none' to skip",
    )
    ap.add_argument("--min-rows", type=int, default=900)
    ap.add_argument("--jaccard", type=float, default=0.7)
    ap.add_argument("--no-warnings", action="store_true", help="hide the lexicon hints")
    args = ap.parse_args(argv)

    errors: list[str] = []
    header, rows = read_rows(args.csv)
    print(f"file: {args.csv}")
    if header != HEADER:
        errors.append(f"header is {header}, expected {HEADER}")

    texts: list[str] = []
    text_styles: list[str] = []  # parallel to texts
    styles: Counter = Counter()
    for n, row in enumerate(rows, start=2):  # line 1 is the header
        s = row.get("sentence") or ""
        if not s.strip():
            errors.append(f"line {n}: empty sentence")
            continue
        if s != s.strip() or "  " in s or "\n" in s:
            errors.append(f"line {n}: stray whitespace in {s!r}")
        if (row.get("label") or "") != LABEL:
            errors.append(f"line {n}: label {row.get('label')!r} is not {LABEL}")
        st = row.get("style") or ""
        if st not in STYLES:
            errors.append(f"line {n}: style {st!r} not in {STYLES}")
        styles[st] += 1
        texts.append(s)
        text_styles.append(st)

    # exact and normalised duplicates
    exact = [t for t, c in Counter(texts).items() if c > 1]
    for t in exact:
        errors.append(f"exact duplicate: {t!r}")
    by_norm: dict[str, list[str]] = defaultdict(list)
    for t in texts:
        by_norm[normalise(t)].append(t)
    for forms in by_norm.values():
        if len(set(forms)) > 1:
            errors.append(f"duplicate after normalisation: {sorted(set(forms))}")

    # near duplicates
    near = near_duplicates(texts, args.jaccard)
    for jac, i, j in near:
        errors.append(f"near-duplicate (3-gram Jaccard {jac:.2f}): {texts[i]!r} ~ {texts[j]!r}")
    all_pairs_max = near[0][0] if near else None

    # copies from the source corpora
    train = None if args.train.lower() == "none" else Path(args.train)
    kote = None if args.kote.lower() == "none" else Path(args.kote)
    corpus = corpus_sentences(train, kote)
    copied = [(t, corpus[normalise(t)]) for t in texts if normalise(t) in corpus]
    for t, src in copied:
        errors.append(f"also in {src}: {t!r}")
    checked = [p.name for p in (train, kote) if p is not None and p.exists()]

    # stats
    lens = [len(t) for t in texts]
    print(f"rows: {len(rows)}  distinct sentences: {len(set(texts))}  (minimum {args.min_rows})")
    print(
        "style counts: "
        + ", ".join(
            f"{s} {styles.get(s, 0)} ({100 * styles.get(s, 0) / max(1, len(texts)):.0f}%)"
            for s in STYLES
        )
    )
    if lens:
        print(
            f"length in characters: min {min(lens)}, p10 {pct(lens, 0.1)}, median "
            f"{statistics.median(lens):g}, mean {statistics.mean(lens):.1f}, p90 "
            f"{pct(lens, 0.9)}, max {max(lens)}"
        )
        buckets = Counter("<8" if n < 8 else "8-40" if n <= 40 else ">40" for n in lens)
        print(
            "length buckets: "
            + ", ".join(
                f"{b} {buckets.get(b, 0)} ({100 * buckets.get(b, 0) / len(lens):.0f}%)"
                for b in ("<8", "8-40", ">40")
            )
        )
        words = [len(t.split()) for t in texts]
        print(
            f"words per sentence: min {min(words)}, median {statistics.median(words):g}, "
            f"max {max(words)}"
        )
        for st in STYLES:
            ls = [len(t) for t, ts in zip(texts, text_styles, strict=True) if ts == st]
            if ls:
                print(f"  {st:8s} median length {statistics.median(ls):g}")
    print(
        f"near-duplicate threshold: 3-gram Jaccard > {args.jaccard}; pairs over it: {len(near)}"
        + (f" (max {all_pairs_max:.2f})" if all_pairs_max else "")
    )
    print(
        f"copy check against: {', '.join(checked) or 'nothing (corpora not found)'}; "
        f"{len(corpus)} normalised sentences; copies found: {len(copied)}"
    )

    if not args.no_warnings:
        hits = []
        for t in texts:
            for tag, words_ in WARN_WORDS.items():
                found = [w for w in words_ if w in t]
                if found:
                    hits.append(f"  [{tag} {','.join(found)}] {t}")
        print(f"lexicon hints for review (not errors): {len(hits)}")
        for h in hits:
            print(h)

    if len(set(texts)) < args.min_rows:
        errors.append(f"only {len(set(texts))} distinct sentences, need {args.min_rows}")
    if errors:
        print(f"\nFAILED: {len(errors)} problem(s)")
        for e in errors:
            print("  " + e)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
