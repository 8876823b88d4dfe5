"""``moodtune publish-cf`` — hand a CF model trained outside the bot to every replica.

Why a command of its own: ``moodtune train-cf`` (and a Spark job on a cluster) write a model to
a folder; replicas that share PostgreSQL adopt the newest model in the store's ``cf_models``
table (:mod:`bot.cf_share`). A trainer that is not itself a replica — cron on a batch host, the
Spark driver — publishes with this after training::

    moodtune train-cf --out /tmp/cf && moodtune publish-cf --cf /tmp/cf

It lives in bot/ because it reads the bot's settings (DATABASE_URL / DATABASE_PATH) and the
serving side owns the table and the archive format; ``training/`` does not import them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cf", type=Path, default=None,
                        help="the trained CF artifact folder (default: CF_PATH)")
    parser.add_argument("--db", default=None,
                        help="a SQLite path or postgresql:// URL (default: DATABASE_URL, else "
                             "DATABASE_PATH; an URL here is visible in `ps`, prefer the "
                             "environment)")


async def publish(cf: Path, db: str) -> tuple[str, bool]:
    """``(model_id, new)``: the artifact at ``cf`` put in ``db``'s ``cf_models``."""
    from bot.cf_share import pack_cf
    from bot.store_pg import open_store

    store = await open_store(db, max_size=2)
    try:
        stamp, archive = pack_cf(cf)
        return stamp.model_id, bool(await store.cf_publish(stamp.model_id, stamp.trained_at,
                                                           archive))
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from bot.cf_share import CFShareError
    from bot.settings import Settings
    from bot.store import StoreError

    settings = Settings()
    cf = args.cf or settings.resolved_cf_path
    db = args.db or (settings.database_url.get_secret_value() if settings.database_url
                     else str(settings.resolved_database_path))
    try:
        model_id, new = asyncio.run(publish(cf, db))
    except (CFShareError, StoreError, OSError) as exc:
        print(f"moodtune publish-cf: {exc}", file=sys.stderr)
        return 1
    print(f"CF model {model_id} " + ("published: every replica on this database adopts it "
                                     "within CF_CHECK_INTERVAL_S" if new else
                                     "was already in the store"))
    return 0
