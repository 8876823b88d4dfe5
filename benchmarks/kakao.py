"""Benchmark the Kakao skill server: 50 concurrent clients over HTTP versus the engine called directly.

    python -m benchmarks.kakao            # 20 s per measurement
    python -m benchmarks.kakao --quick    # 5 s per measurement (< 45 s in all)

The question is whether the HTTP adapter (aiohttp, JSON parse/render, response validation,
rate limiter, metrics) costs anything next to the engine, and whether p99 stays far from
Kakao's 5 s deadline under load. Each measurement runs the *real* engine (the shipped ONNX model
when ``inference/models/default`` exists, else ``inference.keyword.KeywordClassifier``; the
shipped catalogue when present, else a synthetic one; a real SQLite store either way) in a fresh
subprocess, so the engine never shares a CPU-bound event loop with the load generator:

* **HTTP, 50 clients** — the skill server on 127.0.0.1; 50 aiohttp clients in this process,
  each posting Kakao SkillPayloads back to back (its own user id, a mix of sentences and
  explicit moods) for a fixed, self-stopping duration after a warm-up.
* **HTTP, 1 client** — the same server, one client: latency without queueing.
* **direct, 50 tasks** — the obvious alternative: 50 asyncio tasks calling
  ``Recommender.recommend`` in the engine process, no HTTP at all.
* **callback flood** — a slow engine (the keyword classifier sleeping ``--flood-delay-ms`` per
  message in the worker threads) under 200 clients posting callback requests back to back
  (their answers go to a receiver in this process), while 10 clients post ordinary requests.
  The question: does the admission limit (``ENGINE_MAX_PENDING``) keep the ordinary requests'
  p99 under Kakao's 5 s, answering "busy" at once instead of queueing everyone? Reported: the
  ordinary requests' p50/p99, how many heard "busy", and the server's busy counters.

An error is a non-200 answer, a transport error, or a polite failure text (busy / error) where a
recommendation was expected. Results: table on stdout, JSON in ``benchmarks/results/kakao.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import machine, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "kakao.json"
ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 50
FLOOD_CLIENTS = 200  # callback requests, back to back
FLOOD_DIRECT_CLIENTS = 10  # ordinary requests measured during the flood
FLOOD_DELAY_MS = 50.0  # per message, in the engine's worker threads
FLOOD_CALLBACK_AFTER_MS = 1000  # answer useCallback after this (Kakao's setting, shortened)
DEADLINE_S = 5.0  # Kakao's skill timeout
SENTENCES = (
    "오늘 하루 너무 지치고 우울해", "시험 결과 기다리는 중이라 너무 떨려", "친구랑 싸워서 화나",
    "주말이라 여유롭고 편안해", "드디어 합격했어 너무 행복해", "그냥 평범한 하루였어",
    "비 오는 날엔 괜히 슬퍼", "퇴근길에 신나는 노래 듣고 싶어", "내일 발표라 불안해",
    "짜증나는 일이 계속 생겨", "카페에서 차분하게 책 읽는 중", "여행 가기 전날이라 설레",
)
MOODS = ("/mood 평화", "슬픔", "기쁨", "/mood 긴장")


def _utterance(client: int, i: int) -> str:
    """4 of 5 requests are sentences (classifier path), 1 of 5 an explicit mood."""
    if i % 5 == 4:
        return MOODS[(client + i) % len(MOODS)]
    return SENTENCES[(client * 7 + i) % len(SENTENCES)]


def _payload(utterance: str, user: str, callback_url: str | None = None) -> dict[str, Any]:
    user_request: dict[str, Any] = {
        "timezone": "Asia/Seoul", "utterance": utterance, "lang": "ko", "params": {},
        "block": {"id": "bench", "name": "기분 추천"},
        "user": {"id": user, "type": "botUserKey", "properties": {}}}
    if callback_url:
        user_request["callbackUrl"] = callback_url
    return {"intent": {"id": "bench", "name": "기분 추천"},
            "userRequest": user_request,
            "bot": {"id": "bench", "name": "moodtune"},
            "action": {"name": "bench", "clientExtra": None, "params": {}, "id": "bench",
                       "detailParams": {}}}


# ---- engine process -------------------------------------------------------------------------
async def _open_engine(work: Path, slow_ms: float | None = None
                       ) -> tuple[Any, Any, dict[str, Any]]:
    """The engine on the shipped model (or the keyword classifier), or — with ``slow_ms`` — on
    the keyword classifier made slow, with callbacks to 127.0.0.1 allowed (the flood)."""
    from bot.engine import Recommender
    from bot.settings import Settings
    from indexing.catalog import default_catalog_path
    from inference.classifier import default_model_dir
    from inference.keyword import KeywordClassifier

    info: dict[str, Any] = {}
    catalog = default_catalog_path()
    if catalog.exists():
        info["catalog"] = "shipped"
    else:
        from indexing.synthetic import synthetic_catalog

        catalog = work / "catalog.jsonl"
        if not catalog.exists():
            synthetic_catalog(10_000, seed=7).save(catalog)
        info["catalog"] = "synthetic 10,000 songs"
    flood: dict[str, Any] = {}
    if slow_ms is not None:  # the receiver is a local http server: allow it (tests/dev only)
        flood = {"kakao_callback_allow_insecure": True, "kakao_callback_hosts": ["127.0.0.1"],
                 "kakao_callback_after_ms": FLOOD_CALLBACK_AFTER_MS}
    settings = Settings(_env_file=None, data_dir=work / "var", catalog_path=catalog,
                        # every client is one user firing back to back: do not rate-limit
                        rate_limit_per_minute=10**9, feedback_rate_limit_per_minute=10**9,
                        log_level="WARNING", **flood)
    info["engine_max_pending"] = settings.engine_max_pending
    classifier = None
    if slow_ms is not None:
        classifier = KeywordClassifier(delay=slow_ms / 1000)
        info["classifier"] = f"KeywordClassifier sleeping {slow_ms:g} ms per message"
    elif (default_model_dir() / "moodtune.json").exists():
        info["classifier"] = "shipped ONNX model"
    else:
        classifier = KeywordClassifier()
        info["classifier"] = "KeywordClassifier (no shipped model)"
    engine = await Recommender.open(settings, classifier=classifier)
    info["songs"] = len(engine.index)
    info["store"] = "sqlite" if engine.store is not None else "none"
    return engine, settings, info


async def serve_worker(port: int, work: Path, slow_ms: float | None = None) -> None:
    """Engine + skill server; prints READY with setup info, stops when stdin closes."""
    from aiohttp import web

    from bot.kakao import create_app, runner_options

    engine, settings, info = await _open_engine(work, slow_ms)
    runner = web.AppRunner(create_app(engine, settings), handler_cancellation=True,
                           **runner_options(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("READY " + json.dumps(info, ensure_ascii=False), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # parent closes stdin to stop us
    await runner.cleanup()
    await engine.close()


async def _closed_loop(one: Callable[[int, int], Awaitable[bool]], clients: int,
                       duration: float, warmup: float) -> dict[str, Any]:
    """``clients`` tasks each call ``one(client, i)`` back to back; warm up, then measure.

    ``one`` returns whether the answer was good; exceptions count as errors.
    """
    lat: list[float] = []
    errors = 0

    async def client(c: int, until: float, record: bool) -> None:
        nonlocal errors
        i = 0
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            try:
                ok = await one(c, i)
            except Exception:
                ok = False
            if record:
                lat.append(time.perf_counter() - t0)
                errors += not ok
            i += 1

    t = time.perf_counter()
    await asyncio.gather(*(client(c, t + warmup, False) for c in range(clients)))
    t = time.perf_counter()
    await asyncio.gather(*(client(c, t + duration, True) for c in range(clients)))
    return _summary(lat, errors, time.perf_counter() - t)


async def direct_worker(duration: float, warmup: float, work: Path) -> dict[str, Any]:
    """50 tasks calling the engine with no HTTP in between (``respond()``, as the skill does)."""
    engine, _, info = await _open_engine(work)

    async def one(c: int, i: int) -> bool:
        reply = await engine.respond(f"kakao:bench-{c}", _utterance(c, i), channel="kakao")
        return reply.kind in ("recommend", "smalltalk", "help", "feedback")

    try:
        return {"setup": info, **await _closed_loop(one, CLIENTS, duration, warmup)}
    finally:
        await engine.close()


# ---- load generator (this process) -----------------------------------------------------------
def _summary(lat: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    a = np.asarray(lat) * 1000 if lat else np.zeros(1)
    return {"requests": len(lat), "errors": int(errors), "seconds": round(elapsed, 2),
            "rps": round(len(lat) / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2)}


async def http_load(port: int, clients: int, duration: float, warmup: float) -> dict[str, Any]:
    import aiohttp

    from bot.kakao import TEXT_BUSY, TEXT_ERROR, TEXT_TIMEOUT

    url = f"http://127.0.0.1:{port}/kakao/skill"
    polite_failures = {TEXT_BUSY, TEXT_ERROR, TEXT_TIMEOUT}
    timeout = aiohttp.ClientTimeout(total=DEADLINE_S * 2)
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:

        async def one(c: int, i: int) -> bool:
            async with http.post(url, json=_payload(_utterance(c, i), f"bench-{c}")) as r:
                body = await r.json()
            outputs = body["template"]["outputs"]
            return (r.status == 200 and len(outputs) == 2
                    and outputs[0]["simpleText"]["text"] not in polite_failures)

        return await _closed_loop(one, clients, duration, warmup)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """The skill server in its own process (``--serve``); READY's JSON is ``setup``."""

    def __init__(self, work: Path, slow_ms: float | None = None) -> None:
        self.port = _free_port()
        cmd = [sys.executable, "-m", "benchmarks.kakao", "--serve", str(self.port),
               "--work", str(work)]
        if slow_ms is not None:
            cmd += ["--slow-ms", str(slow_ms)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until READY (index build included)
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError(f"skill server did not start (exit {self.proc.poll()}): {line!r}")
        self.setup: dict[str, Any] = json.loads(line[6:])

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_http(work: Path, duration: float, warmup: float) -> tuple[dict, list[dict[str, Any]]]:
    server = _Server(work)
    try:
        rows = []
        for name, clients in (("HTTP skill server, 50 clients", CLIENTS),
                              ("HTTP skill server, 1 client", 1)):
            print(f"  {name}: {warmup:.0f} s warm-up + {duration:.0f} s ...", flush=True)
            r = asyncio.run(http_load(server.port, clients, duration, warmup))
            rows.append({"name": name, "clients": clients, **r})
    finally:
        server.close()
    return server.setup, rows


# ---- callback flood ------------------------------------------------------------------------
def _metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def flood_load(port: int, duration: float, warmup: float) -> dict[str, Any]:
    """FLOOD_CLIENTS post callback requests back to back; FLOOD_DIRECT_CLIENTS post ordinary
    ones and are measured. A local receiver stands in for Kakao's callback endpoint."""
    import aiohttp
    from aiohttp import web

    from bot.kakao import TEXT_BUSY, TEXT_ERROR, TEXT_TIMEOUT

    delivered = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal delivered
        await request.read()
        delivered += 1
        return web.json_response({"status": "SUCCESS"})

    receiver = web.Application()
    receiver.router.add_post("/v1/callback/{token}", receive)
    runner = web.AppRunner(receiver, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    cb_port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/kakao/skill"
    flood_counts = {"acked": 0, "busy": 0, "direct": 0, "failed": 0}
    direct: dict[str, Any] = {"lat": [], "ok_lat": [], "busy": 0, "timeout": 0, "error": 0,
                              "ok": 0}
    stop = asyncio.Event()
    recording = False
    timeout = aiohttp.ClientTimeout(total=DEADLINE_S * 2)
    conn = aiohttp.TCPConnector(limit=FLOOD_CLIENTS + FLOOD_DIRECT_CLIENTS)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:

        async def flooder(c: int) -> None:
            i = 0
            while not stop.is_set():
                cb = f"http://127.0.0.1:{cb_port}/v1/callback/t{c}-{i}"
                try:
                    async with http.post(url, json=_payload(_utterance(c, i), f"flood-{c}",
                                                            cb)) as r:
                        body = await r.json()
                    if body.get("useCallback"):
                        flood_counts["acked"] += 1
                    elif TEXT_BUSY in body["template"]["outputs"][0]["simpleText"]["text"]:
                        flood_counts["busy"] += 1
                    else:
                        flood_counts["direct"] += 1
                except Exception:
                    flood_counts["failed"] += 1
                i += 1

        async def measured(c: int) -> None:
            i = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                kind = "error"
                try:
                    async with http.post(url, json=_payload(_utterance(c, i),
                                                            f"direct-{c}")) as r:
                        body = await r.json()
                    outputs = body["template"]["outputs"]
                    first = outputs[0]["simpleText"]["text"]
                    if TEXT_BUSY in first:
                        kind = "busy"
                    elif first == TEXT_TIMEOUT:
                        kind = "timeout"
                    elif r.status == 200 and len(outputs) == 2 and first != TEXT_ERROR:
                        kind = "ok"
                except Exception:
                    pass
                if recording:
                    direct["lat"].append(time.perf_counter() - t0)
                    direct[kind] += 1
                    if kind == "ok":
                        direct["ok_lat"].append(direct["lat"][-1])
                i += 1

        tasks = [asyncio.create_task(flooder(c)) for c in range(FLOOD_CLIENTS)]
        tasks += [asyncio.create_task(measured(c)) for c in range(FLOOD_DIRECT_CLIENTS)]
        await asyncio.sleep(warmup)
        for k in flood_counts:
            flood_counts[k] = 0
        recording = True
        t0 = time.perf_counter()
        await asyncio.sleep(duration)
        recording = False
        elapsed = time.perf_counter() - t0
        stop.set()
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)  # let the last deliveries land
        async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
            metrics = await r.text()
    await runner.cleanup()
    summary = _summary(direct["lat"], direct["busy"] + direct["timeout"] + direct["error"],
                       elapsed)
    answered = _summary(direct["ok_lat"], 0, elapsed)
    return {
        **summary,
        "answered_p50_ms": answered["p50_ms"], "answered_p99_ms": answered["p99_ms"],
        "answered": direct["ok"], "busy": direct["busy"], "timeouts": direct["timeout"],
        "failed": direct["error"],
        "flood": {**flood_counts, "delivered": delivered},
        "server_busy_replies": int(_metric(
            metrics, 'moodtune_kakao_replies_total{kind="busy"}')),
        "server_engine_busy": int(_metric(
            metrics, 'moodtune_engine_busy_total{channel="kakao"}')),
    }


def run_flood(work: Path, duration: float, warmup: float) -> tuple[dict, dict[str, Any]]:
    name = f"HTTP in a callback flood, {FLOOD_DIRECT_CLIENTS} clients"
    print(f"  {name} ({FLOOD_CLIENTS} flooding, engine {FLOOD_DELAY_MS:g} ms/message): "
          f"{warmup:.0f} s warm-up + {duration:.0f} s ...", flush=True)
    server = _Server(work, slow_ms=FLOOD_DELAY_MS)
    try:
        r = asyncio.run(flood_load(server.port, duration, warmup))
    finally:
        server.close()
    return server.setup, {"name": name, "clients": FLOOD_DIRECT_CLIENTS, **r}


def run_direct(work: Path, duration: float, warmup: float) -> dict[str, Any]:
    print(f"  engine direct, 50 tasks: {warmup:.0f} s warm-up + {duration:.0f} s ...", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.kakao", "--direct", "--work", str(work),
         "--duration", str(duration), "--warmup", str(warmup)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=duration + warmup + 300)
    if proc.returncode != 0:
        raise RuntimeError(f"direct worker failed:\n{proc.stderr[-2000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r.pop("setup", None)
    return {"name": "engine direct (no HTTP), 50 tasks", "clients": CLIENTS, **r}


def print_table(rows: list[dict[str, Any]]) -> None:
    w = max(34, *(len(r["name"]) for r in rows))
    head = (f"| {'mode':<{w}} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | "
            f"{'requests':>8} | {'errors':>6} |")
    print("\n" + head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['name']:<{w}} | {r['rps']:>7.1f} | {r['p50_ms']:>7.2f} | {r['p99_ms']:>7.2f} | "
              f"{r['max_ms']:>7.2f} | {r['requests']:>8,} | {r['errors']:>6,} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 s per measurement instead of 20 s")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--slow-ms", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    duration = args.duration or (5.0 if args.quick else 20.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)

    if args.serve is not None:
        asyncio.run(serve_worker(args.serve, args.work, args.slow_ms))
        return 0
    if args.direct:
        print(json.dumps(asyncio.run(direct_worker(duration, warmup, args.work))))
        return 0

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="moodtune-bench-kakao-") as tmp:
        work = Path(tmp)
        print(f"Kakao skill server benchmark ({'quick' if args.quick else 'full'}): "
              f"{CLIENTS} concurrent clients, {duration:.0f} s per measurement", flush=True)
        # Each engine process gets its own data dir (store + index), built from the same catalogue.
        (work / "http").mkdir()
        (work / "direct").mkdir()
        setup, rows = run_http(work / "http", duration, warmup)
        print(f"  engine: {setup['classifier']}; catalogue: {setup['catalog']} "
              f"({setup['songs']:,} songs indexed); store: {setup['store']}", flush=True)
        rows.append(run_direct(work / "direct", duration, warmup))
        (work / "flood").mkdir()
        flood_setup, flood = run_flood(work / "flood", duration, warmup)
    print_table([*rows, flood])
    f = flood["flood"]
    print(f"\nCallback flood ({FLOOD_CLIENTS} clients, {flood_setup['classifier']}, "
          f"ENGINE_MAX_PENDING={flood_setup['engine_max_pending']}): ordinary requests p50 "
          f"{flood['p50_ms']:.0f} ms, p99 {flood['p99_ms']:.0f} ms; {flood['answered']:,} "
          f"answered (p50 {flood['answered_p50_ms']:.0f} ms, p99 "
          f"{flood['answered_p99_ms']:.0f} ms), {flood['busy']:,} told 'busy', {flood['timeouts']:,} timed out. Flood: "
          f"{f['acked']:,} acked (useCallback), {f['busy']:,} busy at once, {f['direct']:,} "
          f"answered directly, {f['delivered']:,} callbacks delivered. Server: "
          f"{flood['server_busy_replies']:,} busy replies, {flood['server_engine_busy']:,} "
          f"engine refusals. (The errors column counts busy + timeouts + failures.)")
    http50, direct = rows[0], rows[2]
    ratio = {
        "rps_http_over_direct": round(http50["rps"] / direct["rps"], 3) if direct["rps"] else None,
        "p50_http_over_direct": round(http50["p50_ms"] / direct["p50_ms"], 2)
        if direct["p50_ms"] else None,
        "p99_http_over_direct": round(http50["p99_ms"] / direct["p99_ms"], 2)
        if direct["p99_ms"] else None,
    }
    p99_ok = all(r["p99_ms"] < DEADLINE_S * 1000 / 2 for r in rows)
    flood_ok = flood["p99_ms"] < DEADLINE_S * 1000
    print(f"\nHTTP overhead at {CLIENTS} clients: throughput x{ratio['rps_http_over_direct']} of "
          f"direct, p50 x{ratio['p50_http_over_direct']}, p99 x{ratio['p99_http_over_direct']}. "
          f"p99 {'well under' if p99_ok else 'NOT well under'} Kakao's 5 s deadline "
          f"(max p99 {max(r['p99_ms'] for r in rows):.0f} ms; bar: < 2,500 ms).")
    print("Load generator and server share this machine's cores; the engine process is separate.")
    result = {
        "benchmark": "kakao",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "clients": CLIENTS,
        "duration_s": duration,
        "warmup_s": warmup,
        "setup": setup,
        "machine": machine(load_avg_1m=round(os.getloadavg()[0], 2)),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
        "http_vs_direct": ratio,
        "p99_well_under_deadline": p99_ok,
        "flood": {"setup": flood_setup, "flood_clients": FLOOD_CLIENTS,
                  "delay_ms": FLOOD_DELAY_MS, "callback_after_ms": FLOOD_CALLBACK_AFTER_MS,
                  **flood},
        "flood_p99_under_deadline": flood_ok,
    }
    write_results(args.out, result)
    print(f"results written to {args.out} ({result['seconds']} s)")
    print(f"Direct p99 during the flood {'under' if flood_ok else 'NOT under'} Kakao's 5 s "
          f"({flood['p99_ms']:.0f} ms).")
    return 0 if p99_ok and flood_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
