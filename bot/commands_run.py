"""``moodtune run`` — start whatever is configured: Discord, the Kakao skill server, or both.

With neither a Discord token nor ``KAKAO_ENABLED=true`` it falls back to the console chat, so
``make run`` on a fresh machine always gives a working bot to talk to.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--console", action="store_true",
                        help="force the console chat even when Discord/Kakao are configured")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from bot.settings import Settings

    settings = Settings()
    return asyncio.run(serve(settings, force_console=args.console))


async def serve(settings, *, force_console: bool = False) -> int:
    import asyncio
    import logging
    import sys

    from bot.engine import Recommender, StartupError

    discord_on = settings.discord_token is not None and not force_console
    kakao_on = settings.kakao_enabled and not force_console
    if not (discord_on or kakao_on):
        from bot.commands_chat import chat

        return await chat(settings, "console")
    from bot.observability import setup_logging

    setup_logging(settings)
    try:
        rec = await Recommender.open(settings)
    except StartupError as exc:
        print(f"moodtune: {exc}", file=sys.stderr)
        return 1
    try:
        tasks = []
        if kakao_on:
            from bot.kakao import serve as serve_kakao

            tasks.append(asyncio.create_task(serve_kakao(rec, settings), name="kakao"))
        if discord_on:
            from bot.discord import run_discord

            tasks.append(asyncio.create_task(run_discord(rec, settings), name="discord"))
        logging.getLogger("moodtune").info(
            "serving: %s", ", ".join(t.get_name() for t in tasks))
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception() is not None:
                raise t.exception()
        return 0
    finally:
        await rec.close()
