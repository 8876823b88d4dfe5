"""``moodtune`` — one command, many subcommands.

Each subcommand lives beside the code it drives, in a module named after it — ``moodtune
train-cf`` is ``training/train_cf_cli.py``, ``moodtune crawl`` is ``crawler/crawl_cli.py`` — and is
imported only when chosen, so ``moodtune chat`` never pays for importing torch and a missing
``[train]`` extra only breaks the commands that need it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, help). The module provides ``configure(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("bot.run_cli", "start the bot: the web chat (+ Discord / Kakao when configured)"),
    "chat": ("bot.chat_cli", "talk to the recommender in this terminal"),
    "classify": ("bot.classify_cli", "print the emotion vector of sentences (classifier demo)"),
    "crawl": ("crawler.crawl_cli", "collect song lyrics from Melon (needs explicit permission flag)"),
    "label": ("training.label_cli", "label song lyrics with the classifier (lyrics source)"),
    "build-catalog": ("training.build_catalog_cli",
                      "fuse labelled songs + editorial annotations -> song profiles"),
    "catalog": ("indexing.catalog_cli", "inspect a catalogue (stats)"),
    "index": ("indexing.index_cli", "build the Annoy index from a catalogue"),
    "train-classifier": ("training.train_classifier_cli", "train/fine-tune the emotion classifier"),
    "export": ("training.export_cli", "export a trained classifier to ONNX (+ int8)"),
    "train-cf": ("training.train_cf_cli", "train collaborative filtering from stored feedback"),
    "publish-cf": ("bot.publish_cf_cli", "hand a CF model trained elsewhere to every replica"),
    "eval": ("training.eval_cli", "classifier quality report: held-out split vs TF-IDF, probe"),
    "bench": ("bot.bench_cli", "run the quick benchmarks (from a checkout)"),
}


def build_parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="moodtune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    # Parse only the command name first, then let the chosen module define its own flags.
    known, _ = parser.parse_known_args(argv[:1])
    return parser, known


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, known = build_parser(argv)
    if not known.command:
        parser.print_help()
        return 2
    module_name, help_ = COMMANDS[known.command]
    sub = argparse.ArgumentParser(prog=f"moodtune {known.command}", description=help_)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        hint = " (install the training extra: pip install -e '.[train]')" if exc.name in {
            "torch", "transformers", "optimum", "sklearn", "implicit", "matplotlib"} else ""
        print(f"moodtune {known.command}: missing module {exc.name}{hint}", file=sys.stderr)
        return 2
    module.configure(sub)
    args = sub.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
