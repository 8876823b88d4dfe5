"""Benchmark the web chat API beside the Kakao skill, on one server (``bot.server.create_app``).

    python -m benchmarks.web            # 20 s per measurement
    python -m benchmarks.web --quick    # 5 s per measurement

The question: does the web adapter (sessions, CSRF check, JSON shaping, rate limiter, security
headers) cost anything next to the Kakao skill on the same engine, and what do 50 browsers
typing at once see? The server runs in its own process (the real engine: shipped ONNX model and
catalogue when present, a real SQLite store, a temporary DATA_DIR) on 127.0.0.1:

* **web API, 50 sessions** — 50 clients, each with its own cookie jar: ``GET /api/session``
  once (its cookie + CSRF token), then ``POST /api/chat`` back to back.
* **Kakao skill, 50 clients** — the same server, ``POST /kakao/skill`` back to back.
* **web API, 1 session** — latency without queueing.
* **browser** — time from typing to the first answer on screen in headless Chromium, measured
  by ``tests.web_browser.browser_first_answer()`` when that helper and Chromium exist.

An error is a non-200 answer, a transport error, or a "busy"/"error" reply. Results: a table on
stdout, JSON in ``benchmarks/results/web.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import machine, write_results
from benchmarks.kakao import (
    CLIENTS,
    DEADLINE_S,
    _closed_loop,
    _free_port,
    _open_engine,
    _payload,
    _utterance,
    http_load,
    print_table,
)

RESULTS = Path(__file__).resolve().parent / "results" / "web.json"
ROOT = Path(__file__).resolve().parent.parent


async def serve_worker(port: int, work: Path) -> None:
    """Engine + the whole web app (Kakao on); prints READY with setup info, stops on stdin EOF."""
    from aiohttp import web

    from bot.kakao import runner_options
    from bot.server import create_app

    engine, settings, info = await _open_engine(work)
    settings = settings.model_copy(update={"kakao_enabled": True})
    runner = web.AppRunner(create_app(engine, settings), handler_cancellation=True,
                           **runner_options(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("READY " + json.dumps(info, ensure_ascii=False), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    await engine.close()


async def web_load(port: int, clients: int, duration: float, warmup: float) -> dict[str, Any]:
    """``clients`` sessions, each its own cookie jar and CSRF token, posting /api/chat."""
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    timeout = aiohttp.ClientTimeout(total=DEADLINE_S * 2)
    sessions = [aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.CookieJar(unsafe=True))
                for _ in range(clients)]
    try:
        tokens = []
        for http in sessions:
            async with http.get(f"{base}/api/session") as r:
                tokens.append((await r.json())["csrf"])

        async def one(c: int, i: int) -> bool:
            async with sessions[c].post(f"{base}/api/chat", json={"text": _utterance(c, i)},
                                        headers={"X-CSRF-Token": tokens[c]}) as r:
                body = await r.json()
            return r.status == 200 and body.get("kind") not in ("busy", "error")

        return await _closed_loop(one, clients, duration, warmup)
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


async def _kakao_check(port: int) -> bool:
    """The skill really answers on the web server (not a 404 counted as fast)."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/kakao/skill", json=_payload("우울해", "check")) as r:
        return r.status == 200 and "template" in await r.json()


def _start_server(work: Path) -> tuple[subprocess.Popen, int, dict[str, Any]]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.web", "--serve", str(port),
                             "--work", str(work)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"web server did not start (exit {proc.poll()}): {line!r}")
    return proc, port, json.loads(line[6:])


def _stop(proc: subprocess.Popen) -> None:
    if proc.stdin is not None and not proc.stdin.closed:
        proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def browser_measurement() -> dict[str, Any] | None:
    """HOOK for the frontend's browser measurement (``tests/web_browser.py``): the time from
    typing a message to its answer on screen, in headless Chromium. Measured only when that
    helper exists and Chromium is installed; otherwise says why and returns None."""
    try:
        from tests.web_browser import browser_first_answer, browser_unavailable
    except ImportError:
        print("browser: not measured (no browser_first_answer in tests/web_browser.py)")
        return None
    why = browser_unavailable()
    if why is not None:
        print(f"browser: not measured (no chromium) — {why}")
        return None
    seconds = float(browser_first_answer())  # its own server on the shipped model
    print(f"browser: first answer on screen in {seconds * 1000:.0f} ms (headless Chromium: "
          "page load, session, typing, POST /api/chat, five cards rendered)")
    return {"first_answer_ms": round(seconds * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 s per measurement")
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--warmup", type=float, default=None)
    ap.add_argument("--no-browser", action="store_true", help="skip the browser measurement")
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve is not None:
        asyncio.run(serve_worker(args.serve, args.work))
        return 0
    duration = args.duration or (5.0 if args.quick else 20.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    with tempfile.TemporaryDirectory(prefix="moodtune-bench-web-") as tmp:
        proc, port, setup = _start_server(Path(tmp))
        try:
            if not asyncio.run(_kakao_check(port)):
                raise RuntimeError("the Kakao skill does not answer on the web server")
            rows = []
            plan = (("web API POST /api/chat, 50 sessions", "web", CLIENTS),
                    ("Kakao skill POST /kakao/skill, 50 clients", "kakao", CLIENTS),
                    ("web API POST /api/chat, 1 session", "web", 1))
            for name, kind, clients in plan:
                print(f"  {name}: {warmup:.0f} s warm-up + {duration:.0f} s ...", flush=True)
                load = web_load if kind == "web" else http_load
                r = asyncio.run(load(port, clients, duration, warmup))
                rows.append({"name": name, "clients": clients, **r})
        finally:
            _stop(proc)
    print_table(rows)
    # ---- HOOK: browser time-to-first-answer (tests/web_browser.py, frontend engineer) ----
    browser = None if args.no_browser else browser_measurement()
    result = {"benchmark": "web", "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(), "setup": setup, "duration_s": duration, "warmup_s": warmup,
              "rows": rows, "browser": browser}
    print(f"wrote {write_results(RESULTS, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
