"""``moodtune run`` — start whatever is configured: the web chat, Discord, the Kakao skill.

The web server (``WEB_ENABLED``, on by default) serves the chat page, its API, the admin
dashboard and — when ``KAKAO_ENABLED`` — the Kakao skill, so ``make run`` on a fresh machine
opens a chat at http://127.0.0.1:8000/. Discord runs beside it when ``DISCORD_TOKEN`` is set.
With everything off (or ``--console``) it is the terminal chat, as ``moodtune chat`` is.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--console", action="store_true",
                        help="force the terminal chat even when web/Discord/Kakao are configured")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from bot.settings import Settings

    settings = Settings()
    return asyncio.run(serve(settings, force_console=args.console))


async def serve(settings, *, force_console: bool = False) -> int:
    import asyncio
    import logging
    import sys

    from bot.chat_cli import chat, open_engine

    web_on = settings.web_enabled and not force_console
    discord_on = settings.discord_token is not None and not force_console
    kakao_on = settings.kakao_enabled and not force_console
    if not (web_on or discord_on or kakao_on):
        return await chat(settings, "console")
    from bot.observability import setup_logging

    setup_logging(settings)
    rec = await open_engine(settings)
    if rec is None:
        return 1
    try:
        tasks = []
        if web_on:  # the Kakao skill, when enabled, is served by the same app
            from bot.server import serve as serve_web

            tasks.append(asyncio.create_task(serve_web(rec, settings), name="web"))
        elif kakao_on:
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
            exc = t.exception()
            if isinstance(exc, OSError) and t.get_name() in ("web", "kakao"):
                # A port already taken is an operator's problem to fix, not a traceback.
                print(f"moodtune: cannot start the {t.get_name()} server: {exc} "
                      "(is another moodtune running? set WEB_PORT / KAKAO_PORT)", file=sys.stderr)
                return 1
            if exc is not None:
                raise exc
        return 0
    finally:
        await rec.close()
