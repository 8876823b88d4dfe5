"""Does the bot hear the request? The public conversation set through ``respond()``.

    python -m benchmarks.conversation [--split test|dev|all] [--quick]

On the shipped model and catalogue, with a real SQLite store (as ``moodtune run``), every
thread of ``training/data/conversations_ko.jsonl`` is replayed turn by turn as one fresh user:

* **intent accuracy** and **slot F1** — ``bot.understand`` against the expected intent and
  slots (micro-F1 over (slot, value) pairs);
* **constraint satisfaction** — for messages that ask for something checkable (a genre, an
  artist, a situation, an energy, a mood, "not that seed song", "not what you just showed"),
  the share of answers where at least 3 of the 5 tracks meet it (exclusions: all 5);
* **mood accuracy** — the mood ``respond()`` read, on the set's messages that state one and on
  the chat-mood probe (``training/data/chat_mood_probe.csv``) when present;
* **latency** — ``respond()`` p50/p99 beside today's ``recommend()`` on the same messages.

Targets (issue 12): constraint satisfaction ≥ 0.90, intent accuracy ≥ 0.95, respond() p50 ≤ 10 ms.
Results: table on stdout, JSON in ``benchmarks/results/conversation.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks import machine, write_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "conversation.json"
SET = ROOT / "training" / "data" / "conversations_ko.jsonl"
PROBE = ROOT / "training" / "data" / "chat_mood_probe.csv"


def load_set(split: str) -> dict[str, list[dict]]:
    threads: dict[str, list[dict]] = defaultdict(list)
    with SET.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                threads[row["thread"]].append(row)
    out = {}
    for tid, rows in threads.items():
        rows.sort(key=lambda r: r["turn"])
        if split == "all" or rows[0].get("split") == split:
            out[tid] = rows
    return out


def _pairs(slots: dict) -> set[tuple[str, str]]:
    out = set()
    for k, v in slots.items():
        if v in (None, "", [], ()):
            continue
        for x in v if isinstance(v, list | tuple) else [v]:
            out.add((k, str(x)))
    return out


def satisfied(constraint: dict, tracks: list, previous: list) -> bool | None:
    """Whether ≥ 3 of the tracks meet the constraint (exclusions: every track); None if n/a."""
    from indexing.catalog import normalise
    from inference.emotions import LABELS

    if not constraint:
        return None
    if not tracks:
        return False
    ok = [True] * len(tracks)
    for key, want in constraint.items():
        for i, t in enumerate(tracks):
            f = t.facets or {}
            if key == "genre":
                hit = t.genre == want
            elif key == "artist":
                hit = normalise(want) in normalise(t.artist) or normalise(t.artist) in normalise(want)
            elif key == "situation":
                hit = want in (f.get("situations") or ())
            elif key == "energy":
                e = f.get("energy")
                hit = e is not None and (e >= 0.6 if want == "up" else e <= 0.45)
            elif key == "mood":
                hit = LABELS[int(np.argmax(t.vector))] == want
            elif key == "not_song":
                hit = t.song_id != want
            elif key == "not_previous":
                hit = t.song_id not in {p.song_id for p in previous}
            else:
                hit = True
            ok[i] = ok[i] and hit
    strict = any(k.startswith("not_") for k in constraint) and len(constraint) == 1
    return all(ok) if strict else sum(ok) >= 3


async def run(split: str, quick: bool) -> dict:
    from bot.engine import Recommender
    from bot.settings import Settings
    from bot.understand import understand
    from inference.emotions import LABELS

    threads = load_set(split)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), rate_limit_per_minute=10_000)
        engine = await Recommender.open(settings)
        try:
            lex = engine.lexicon()
            intents = slots_tp = slots_fp = slots_fn = 0
            n_msgs = 0
            cons: list[bool] = []
            cons_by: dict[str, list[bool]] = defaultdict(list)
            moods: list[bool] = []
            misses: list[dict] = []
            lat_respond: list[float] = []
            for tid, rows in threads.items():
                user = f"bench:{tid}"
                previous: list = []
                for r in rows:
                    req = understand(r["text"], lex, has_thread=bool(previous))
                    n_msgs += 1
                    intents += req.intent == r["intent"]
                    got = _pairs({k: v for k, v in req.as_dict().items()
                                  if k not in ("intent", "text")})
                    want = _pairs(r.get("slots") or {})
                    slots_tp += len(got & want)
                    slots_fp += len(got - want)
                    slots_fn += len(want - got)
                    t0 = time.perf_counter()
                    reply = await engine.respond(user, r["text"], channel="bench")
                    lat_respond.append((time.perf_counter() - t0) * 1000)
                    ok = satisfied(r.get("constraint") or {}, reply.tracks, previous)
                    if ok is not None:
                        cons.append(ok)
                        for key in r["constraint"]:
                            cons_by[key].append(ok)
                        if not ok:
                            misses.append({"id": r["id"], "text": r["text"],
                                           "constraint": r["constraint"], "kind": reply.kind,
                                           "got": [(t.title, t.artist, t.genre) for t in
                                                   reply.tracks]})
                    if r.get("mood") and reply.emotion is not None:
                        moods.append(LABELS[int(np.argmax(reply.emotion))] == r["mood"])
                    if reply.tracks:
                        previous = list(reply.tracks)
            probe_acc = None
            if PROBE.exists():
                with PROBE.open(encoding="utf-8") as fh:
                    probe = list(csv.DictReader(fh))
                hits = []
                for i, row in enumerate(probe):
                    rep = await engine.respond(f"probe:{i}", row["sentence"], channel="bench")
                    if rep.emotion is not None:
                        hits.append(LABELS[int(np.argmax(rep.emotion))] == row["label"])
                probe_acc = {"n": len(hits), "accuracy": round(float(np.mean(hits)), 4)
                             if hits else None}
            # today's path on the same messages, for the latency comparison
            lat_recommend = []
            texts = [r["text"] for rows in threads.values() for r in rows]
            for i, text in enumerate(texts[: 150 if quick else len(texts)]):
                t0 = time.perf_counter()
                await engine.recommend(f"old:{i}", text, channel="bench")
                lat_recommend.append((time.perf_counter() - t0) * 1000)
        finally:
            await engine.close()
    p = slots_tp / max(slots_tp + slots_fp, 1)
    rc = slots_tp / max(slots_tp + slots_fn, 1)
    return {
        "split": split, "threads": len(threads), "messages": n_msgs,
        "intent_accuracy": round(intents / max(n_msgs, 1), 4),
        "slot_precision": round(p, 4), "slot_recall": round(rc, 4),
        "slot_f1": round(2 * p * rc / max(p + rc, 1e-9), 4),
        "constraint_satisfaction": round(float(np.mean(cons)), 4) if cons else None,
        "constraint_n": len(cons),
        "constraint_by_kind": {k: {"n": len(v), "satisfied": round(float(np.mean(v)), 4)}
                               for k, v in sorted(cons_by.items())},
        "mood_accuracy_set": round(float(np.mean(moods)), 4) if moods else None,
        "mood_n_set": len(moods), "mood_probe": probe_acc,
        "respond_ms": {"p50": round(float(np.percentile(lat_respond, 50)), 2),
                       "p99": round(float(np.percentile(lat_respond, 99)), 2)},
        "recommend_ms": {"p50": round(float(np.percentile(lat_recommend, 50)), 2),
                         "p99": round(float(np.percentile(lat_recommend, 99)), 2)},
        "misses": misses[:40],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["test", "dev", "all"], default="all")
    ap.add_argument("--quick", action="store_true", help="fewer recommend() timing calls")
    args = ap.parse_args(argv)
    r = asyncio.run(run(args.split, args.quick))
    print(f"\nConversation set ({args.split}): {r['threads']} threads, {r['messages']} messages")
    print(f"  intent accuracy          {r['intent_accuracy']:.3f}   (target ≥ 0.95)")
    print(f"  slot F1                  {r['slot_f1']:.3f}   (P {r['slot_precision']:.3f}, "
          f"R {r['slot_recall']:.3f})")
    cs = r["constraint_satisfaction"]
    print(f"  constraint satisfaction  {cs:.3f}   on {r['constraint_n']} requests "
          "(≥ 3 of 5 tracks meet it; target ≥ 0.90)")
    for k, v in r["constraint_by_kind"].items():
        print(f"      {k:<13} {v['satisfied']:.3f}  (n={v['n']})")
    if r["mood_accuracy_set"] is not None:
        print(f"  mood accuracy (set)      {r['mood_accuracy_set']:.3f}   n={r['mood_n_set']}")
    if r["mood_probe"]:
        print(f"  mood accuracy (probe)    {r['mood_probe']['accuracy']:.3f}   "
              f"n={r['mood_probe']['n']}")
    print(f"\n{'path':<12}{'p50 ms':>9}{'p99 ms':>9}")
    for name in ("respond", "recommend"):
        m = r[f"{name}_ms"]
        print(f"{name + '()':<12}{m['p50']:>9.2f}{m['p99']:>9.2f}")
    write_results(RESULTS, {"machine": machine(), **r, "quick": args.quick})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
