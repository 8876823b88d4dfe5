"""Run a moodtune job the way the README's cluster recipes do: ``spark-submit --py-files
moodtune.zip deploy/spark_job.py <command> …``, with ``--master local[2]`` (a fresh JVM).

Why a real spark-submit and not the in-process session: the recipe's failure modes are about
how spark-submit starts Python (the application's folder first on ``sys.path``, code only from
the zip), which the warm ``spark`` fixture cannot show.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "training", "indexing", "inference", "crawler")


def spark_submit(args: list[str], work: Path, *, timeout: float = 240
                 ) -> subprocess.CompletedProcess[str]:
    """``spark-submit … deploy/spark_job.py *args`` in ``work``; the code only from a zip of
    the packages' sources (PYTHONPATH is dropped)."""
    submit = Path(sys.executable).with_name("spark-submit")
    if not submit.exists():
        submit = Path(shutil.which("spark-submit") or "spark-submit")
    zipped = work / "moodtune.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for pkg in PACKAGES:
            for f in (REPO / pkg).rglob("*.py"):
                zf.write(f, f.relative_to(REPO))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(submit), "--master", "local[2]", "--driver-memory", "1g",
         "--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.ui.enabled=false",
         "--py-files", str(zipped), str(REPO / "deploy" / "spark_job.py"), *args],
        cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False)
