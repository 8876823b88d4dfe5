"""Benchmarks: ``python -m benchmarks.<name>`` prints a table and writes its figures as JSON."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine(**extra: Any) -> dict[str, Any]:
    """What a result was measured on, so figures from different machines are not compared."""
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), **extra}


def write_results(path: Path, result: dict[str, Any]) -> Path:
    """Write one benchmark's figures (pretty JSON, Korean kept readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
