"""One way to get a SparkSession for the Spark engines (``--engine spark`` of train-cf / label).

Why a helper and not ``SparkSession.builder`` at each call site: local mode needs the same few
settings everywhere, and each one was learned the hard way (../shared/FACTS.md, "Spark"):

* the Python workers must be this interpreter (``PYSPARK_PYTHON``), else they start the
  system ``python3`` and ``mapInPandas`` fails with ``No module named 'pyarrow'``;
* ``SPARK_LOCAL_IP=127.0.0.1`` keeps a laptop or CI box from binding a LAN address (and from
  warning about the loopback hostname);
* a small ``spark.sql.shuffle.partitions`` (the default 200 turns a 20k-row groupBy into 200
  tiny tasks, seconds of overhead on two cores) and no UI port.

On a cluster, ``spark-submit`` provides the master and the resources; :func:`session` then only
adds what is missing (``getOrCreate`` keeps the submitted configuration).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

__all__ = ["SparkUnavailableError", "session", "spark_available"]


class SparkUnavailableError(RuntimeError):
    """pyspark or a Java runtime is missing; the message says what to install."""


def spark_available() -> str | None:
    """None when a local Spark can start here, else why not (for skips and CLI errors)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return ("pyspark is not installed: pip install 'moodtune[spark]' (pyspark==4.3.0, "
                "pandas<3, pyarrow)")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return ("no Java runtime: install Java 17 (Debian: apt-get install "
                "openjdk-17-jre-headless) or set JAVA_HOME")
    return None


def session(app_name: str = "moodtune", *, master: str | None = None,
            partitions: int | None = None, driver_memory: str = "2g") -> Any:
    """A SparkSession: ``master`` (default ``$SPARK_MASTER`` or ``local[2]``) unless one is
    already running or was set by ``spark-submit``.

    ``partitions`` sets ``spark.sql.shuffle.partitions`` (default: 2 × the local cores, at
    least 2). Raises :class:`SparkUnavailableError` when pyspark or Java is missing.
    """
    why = spark_available()
    if why:
        raise SparkUnavailableError(why)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    master = master or os.environ.get("SPARK_MASTER") or "local[2]"
    shuffle = partitions or max(2, 2 * (os.cpu_count() or 1))
    builder = (SparkSession.builder.appName(app_name)
               .config("spark.sql.shuffle.partitions", str(shuffle))
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.driver.memory", driver_memory)
               .config("spark.executorEnv.PYSPARK_PYTHON", os.environ["PYSPARK_PYTHON"]))
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # set when spark-submit started the JVM
        builder = builder.master(master)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j/Java start-up failures arrive as assorted exception types
        raise SparkUnavailableError(f"Spark did not start ({type(exc).__name__}: {exc}); "
                                    "check the Java runtime (Java 17)") from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark
