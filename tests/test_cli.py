"""The ``moodtune`` command line: every listed subcommand exists, and ``classify`` runs the
model the bot serves."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import COMMANDS

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_listed_command_has_a_module_with_configure_and_run(name):
    """`moodtune eval` used to be listed with no module behind it (exit 2)."""
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(module.configure) and callable(module.run)


def _classify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "classify", "--json", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, **(env or {})})


def test_classify_honours_model_dir_from_the_environment(tmp_path):
    """Before: `moodtune classify` always ran the shipped model, whatever MODEL_DIR said."""
    missing = tmp_path / "no-model-here"
    out = _classify("오늘 너무 우울해", env={"MODEL_DIR": str(missing)})
    assert out.returncode == 1 and str(missing) in out.stderr
    ok = _classify("오늘 너무 우울해")
    assert ok.returncode == 0, ok.stderr
    row = json.loads(ok.stdout)
    assert abs(sum(v for k, v in row.items() if k != "text") - 1) < 1e-3


def test_classify_cleans_invalid_unicode_instead_of_crashing():
    out = _classify("\udcff우울해")
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_eval_prints_the_quality_report_against_the_baseline(tmp_path):
    """`moodtune eval` used to exit 2 (no module); now it is the classifier report."""
    out = tmp_path / "eval.json"
    r = subprocess.run([sys.executable, "-m", "bot", "eval", "--json", str(out)],
                       capture_output=True, text=True, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "tfidf_logreg" in r.stdout and "probe" in r.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["onnx_int8_served"]["macro_f1_6"] > report["tfidf_logreg"]["macro_f1_6"]


def test_bench_refuses_an_unknown_benchmark_and_lists_the_known_ones():
    r = subprocess.run([sys.executable, "-m", "bot", "bench", "no-such-bench"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2 and "memory" in r.stderr and "kakao" in r.stderr


def test_cli_modules_follow_one_naming_scheme():
    """Issue 10: `moodtune X-Y` lives in `<package>/X_Y_cli.py`, beside the code it drives."""
    for name, (module, _) in COMMANDS.items():
        assert module.rsplit(".", 1)[1] == name.replace("-", "_") + "_cli", (name, module)
