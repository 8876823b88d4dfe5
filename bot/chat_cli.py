"""``moodtune chat`` — the console chat on the configured (by default the shipped) engine."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", default="console", help="user id the history is kept under")
    parser.add_argument("--data-dir", default=None, help="override DATA_DIR for this run")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from bot.settings import Settings

    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    settings = Settings(**overrides)
    return asyncio.run(chat(settings, args.user))


async def open_engine(settings):  # -> Recommender | None
    """The engine, or None after printing the one-line reason it cannot start (shared by
    ``chat`` and ``run``: a broken model or catalogue file is a sentence, not a traceback)."""
    import sys

    from bot.engine import Recommender, StartupError

    try:
        return await Recommender.open(settings)
    except StartupError as exc:
        print(f"moodtune: {exc}", file=sys.stderr)
        return None


async def chat(settings, user_id: str) -> int:
    from bot.console import run_console

    rec = await open_engine(settings)
    if rec is None:
        return 1
    try:
        return await run_console(rec, user_id=user_id)
    finally:
        await rec.close()
