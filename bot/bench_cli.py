"""``moodtune bench`` — run the quick benchmarks (each prints its table and writes JSON to
``benchmarks/results/``). The scripts live in the repository's ``benchmarks/`` folder, not in
the installed package, so this runs them from a checkout."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Cheap enough for a routine check on two cores; the others are listed in the README.
QUICK = ("classifier", "index", "engine", "memory", "kakao")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: {' '.join(QUICK)})")
    parser.add_argument("--full", action="store_true", help="full size instead of --quick")


def run(args: argparse.Namespace) -> int:
    folder = ROOT / "benchmarks"
    names = args.names or list(QUICK)
    missing = [n for n in names if not (folder / f"{n}.py").is_file()]
    if missing:
        known = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
        print(f"moodtune bench: no benchmark {', '.join(missing)} in {folder} "
              f"(known: {', '.join(known) or 'none — run from a checkout of the repository'})",
              file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n=== benchmarks/{name}.py ===", flush=True)
        cmd = [sys.executable, "-m", f"benchmarks.{name}", *([] if args.full else ["--quick"])]
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            failed.append(name)
    if failed:
        print(f"moodtune bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
