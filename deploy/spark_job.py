"""The ``spark-submit`` entry point for moodtune's Spark jobs: ``moodtune <args>`` on a cluster.

    spark-submit [cluster options] --py-files moodtune.zip deploy/spark_job.py \\
        train-cf --engine spark --snapshot hdfs:///moodtune/feedback.parquet --out var/cf
    spark-submit [cluster options] --archives moodtune-venv.tar.gz#venv deploy/spark_job.py \\
        label --engine spark --table hdfs:///data/lyrics.parquet --out labelled.jsonl

Why a file here and not ``training/cf_spark.py`` or ``bot/cli.py`` as the application: Python
puts the application's own folder first on ``sys.path``, and those folders hold modules named
like the standard library's or a dependency's (``training/profile.py`` hides ``profile``, which
pyspark imports at start; ``bot/discord/`` would hide discord.py). This folder holds nothing
that can shadow anything. The session the job gets keeps spark-submit's master and resources
(:func:`training.spark.session`).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from bot.cli import main

    raise SystemExit(main(sys.argv[1:]))
