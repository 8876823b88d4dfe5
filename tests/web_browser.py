"""Drive the web chat page in a real headless Chromium (Debian's ``chromium`` + ``chromedriver``).

Shared by ``tests/test_web_browser.py``, ``benchmarks/web.py`` and the README screenshots::

    python -m tests.web_browser screenshots   # writes docs/screenshots/chat.png, chat-phone.png
                                              # (and admin.png when the server serves /admin)

The server is the real one (``bot.server.create_app``) on the shipped model and catalogue, with a
temporary DATA_DIR, listening on 127.0.0.1 on a free port. It runs on its own event loop in a
background thread, because Selenium's calls block: :meth:`LiveServer.call` runs a coroutine
(``recommender.store.feedback_events()``, …) on that loop and waits for its result.

Nothing here downloads a browser: when ``/usr/bin/chromium`` or ``/usr/bin/chromedriver`` is
missing, :func:`browser_unavailable` says why and the tests skip (CI installs both, see
``.ci/run``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("MOODTUNE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("MOODTUNE_CHROMEDRIVER", "/usr/bin/chromedriver"))
SCREENSHOT_DIR = ROOT / "benchmarks" / "results" / "screenshots"
DOCS_SCREENSHOT_DIR = ROOT / "docs" / "screenshots"
ADMIN_TOKEN = "browser-test-admin-token-0123456789"
DESKTOP = (1280, 900)
PHONE = (390, 844)
WAIT_S = 20.0
FIRST_MESSAGE = "시험 끝나서 신나는 노래 듣고 싶어"

T = TypeVar("T")


def browser_unavailable() -> str | None:
    """Why a browser test cannot run here (None when it can)."""
    if not CHROMIUM.exists():
        return (f"{CHROMIUM} is missing: install Debian's chromium, chromium-driver and "
                "fonts-noto-cjk (apt-get install -y chromium chromium-driver fonts-noto-cjk)")
    if not CHROMEDRIVER.exists():
        return f"{CHROMEDRIVER} is missing: apt-get install -y chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


# ---- the server --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``bot.server.create_app(recommender, settings)`` on 127.0.0.1 in a background thread."""

    def __init__(self, data_dir: Path, *, admin_token: str | None = ADMIN_TOKEN,
                 app_factory: Callable[..., Any] | None = None, **settings: Any) -> None:
        self.data_dir = Path(data_dir)
        self.admin_token = admin_token
        self._app_factory = app_factory
        self._overrides = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="moodtune-web",
                                        daemon=True)
        self.recommender: Any = None
        self.settings: Any = None
        self._runner: Any = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> LiveServer:
        self._thread.start()
        try:
            self.call(self._start())
        except BaseException:
            self.stop()
            raise
        return self

    async def _start(self) -> None:
        from aiohttp import web

        from bot.engine import Recommender
        from bot.settings import Settings

        values: dict[str, Any] = {"data_dir": self.data_dir, "rank_exploration": 0.0,
                                  "web_host": "127.0.0.1", "web_port": self.port,
                                  **self._overrides}
        if self.admin_token is not None:
            values["admin_token"] = self.admin_token
        known = set(Settings.model_fields)
        self.settings = Settings(_env_file=None, **{k: v for k, v in values.items() if k in known})
        self.recommender = await Recommender.open(self.settings)
        factory = self._app_factory
        if factory is None:
            from bot.server import create_app as factory
        app = factory(self.recommender, self.settings)
        if inspect.isawaitable(app):
            app = await app
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.recommender is not None:
            with suppress(Exception):
                await self.recommender.close()
            self.recommender = None

    def stop(self) -> None:
        if self._thread.is_alive():
            with suppress(Exception):
                self.call(self._stop(), timeout=30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ------------------------------------------------------------------------
    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coro`` on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def db_path(self) -> Path:
        return Path(self.settings.resolved_database_path)

    def status(self, path: str) -> int:
        """HTTP status of a GET (no redirects followed)."""

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a: Any, **k: Any) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(self.url + path, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the live database (read-only connection; WAL lets it read while serving)."""
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return list(con.execute(sql, args))
        finally:
            con.close()

    def user_of(self, rec_id: str) -> str | None:
        rows = self.query("SELECT user_id FROM recommendations WHERE rec_id = ?", rec_id)
        return rows[0][0] if rows else None

    def rows_of_user(self, user_id: str) -> dict[str, int]:
        """Rows mentioning ``user_id`` in every table that has a ``user_id`` column."""
        counts: dict[str, int] = {}
        for (table,) in self.query("SELECT name FROM sqlite_master WHERE type = 'table'"):
            cols = {r[1] for r in self.query(f'PRAGMA table_info("{table}")')}
            if "user_id" in cols:
                n = self.query(f'SELECT COUNT(*) FROM "{table}" WHERE user_id = ?', user_id)[0][0]
                counts[table] = int(n)
        return counts


@contextmanager
def live_server(data_dir: Path | None = None, **kw: Any) -> Iterator[LiveServer]:
    tmp = None
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="moodtune-web-")
        data_dir = Path(tmp)
    server = LiveServer(data_dir, **kw)
    try:
        yield server.start()
    finally:
        server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# ---- the browser -------------------------------------------------------------------------
def make_driver(size: tuple[int, int] = DESKTOP, *, phone: bool = False,
                scale: float | None = None) -> Any:
    """Headless Chromium from the Debian packages (never a downloaded one)."""
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={size[0]},{size[1]}", "--lang=ko-KR",
                "--force-prefers-reduced-motion", "--hide-scrollbars",
                "--disable-extensions", "--no-first-run", "--no-default-browser-check"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"intl.accept_languages": "ko-KR,ko"})
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    set_viewport(driver, size, phone=phone, scale=scale)
    return driver


def set_viewport(driver: Any, size: tuple[int, int], *, phone: bool = False,
                 scale: float | None = None) -> None:
    """Exact CSS viewport (a phone gets a 3x screen and touch, like a real one, unless
    ``scale`` says otherwise)."""
    if scale is None:
        scale = 3 if phone else 1
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": size[0], "height": size[1], "deviceScaleFactor": scale,
        "mobile": phone})
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": phone})


@contextmanager
def browser(size: tuple[int, int] = DESKTOP, *, phone: bool = False,
            scale: float | None = None) -> Iterator[Any]:
    driver = make_driver(size, phone=phone, scale=scale)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, cond: Callable[[Any], T], timeout: float = WAIT_S, msg: str = "") -> T:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(cond, msg)


def open_chat(driver: Any, url: str) -> None:
    driver.get(url + "/")
    wait(driver, lambda d: d.execute_script(
        "return document.documentElement.dataset.ready === 'true'"), msg="page never got ready")


def bot_answers(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#thread .msg-row-bot:not(.typing-row)")


def wait_new_answer(driver: Any, before: int, timeout: float = WAIT_S) -> Any:
    """Wait until the thread has more bot answers than ``before`` and nothing is pending."""
    from selenium.webdriver.common.by import By

    def done(d: Any) -> Any:
        rows = bot_answers(d)
        if len(rows) > before and not d.find_elements(By.CSS_SELECTOR, "#thread .typing-row"):
            return rows[-1]
        return False

    return wait(driver, done, timeout, "no new answer in the thread")


def send_message(driver: Any, text: str) -> Any:
    """Type into the message box, press Enter and return the new answer row."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    before = len(bot_answers(driver))
    box = driver.find_element(By.ID, "message")
    box.clear()
    box.send_keys(text + Keys.ENTER)
    return wait_new_answer(driver, before)


def cards(row: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return row.find_elements(By.CSS_SELECTOR, "ol.cards > li.card")


def card_titles(row: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [c.find_element(By.CSS_SELECTOR, ".card-title-text").text for c in cards(row)]


def click_chip(driver: Any, label: str) -> Any:
    """Press a quick-reply chip by its visible label and return the new answer row."""
    from selenium.webdriver.common.by import By

    before = len(bot_answers(driver))
    chip = next(c for c in driver.find_elements(By.CSS_SELECTOR, ".chip")
                if c.get_attribute("data-label") == label)
    wait(driver, lambda d: chip.is_enabled(), msg=f"chip {label} stays disabled")
    chip.click()
    return wait_new_answer(driver, before)


def settle(driver: Any) -> None:
    """Let scrolling and fonts settle before a screenshot."""
    with suppress(Exception):
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "document.fonts.ready.then(() => requestAnimationFrame(() => "
            "requestAnimationFrame(() => done(true))));")
    time.sleep(0.3)


def screenshot(driver: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    settle(driver)
    driver.save_screenshot(str(path))
    return path


def ignore_dir(directory: Path) -> None:
    """Keep screenshots from test runs out of git (a self-ignoring directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / ".gitignore"
    if not marker.exists():
        marker.write_text("*\n", encoding="utf-8")


def admin_login(driver: Any, url: str, token: str = ADMIN_TOKEN) -> None:
    """Open /admin and sign in with the token on its form (a password field)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(url + "/admin")
    field = wait(driver, lambda d: next(iter(d.find_elements(
        By.CSS_SELECTOR, "input[type=password], input[name=token], input#token")), False),
        msg="/admin shows no token field")
    field.send_keys(token + Keys.ENTER)
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "input[type=password]")
         or not d.find_element(By.CSS_SELECTOR, "input[type=password]").is_displayed(),
         msg="the admin login form is still shown after signing in")


# ---- screenshots and timing --------------------------------------------------------------
def take_screenshots(out_dir: Path = DOCS_SCREENSHOT_DIR, *, url: str | None = None,
                     admin: bool = True) -> list[Path]:
    """chat.png (desktop), chat-phone.png (390x844) and admin.png when /admin exists."""
    written: list[Path] = []
    with (live_server() if url is None else _no_server(url)) as server:
        with browser(DESKTOP) as driver:
            open_chat(driver, server.url)
            send_message(driver, FIRST_MESSAGE)
            written.append(screenshot(driver, out_dir / "chat.png"))
        # 1x: in the README it sits at its CSS size (390 px wide), not three times that
        with browser(PHONE, phone=True, scale=1) as driver:
            open_chat(driver, server.url)
            send_message(driver, "비 오는 밤에 혼자 들을 잔잔한 노래 추천해줘")
            written.append(screenshot(driver, out_dir / "chat-phone.png"))
        if admin and server.status("/admin") != 404:
            with browser(DESKTOP) as driver:
                admin_login(driver, server.url, getattr(server, "admin_token", None) or ADMIN_TOKEN)
                written.append(screenshot(driver, out_dir / "admin.png"))
    return written


class _Remote:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.admin_token = os.environ.get("ADMIN_TOKEN")

    status = LiveServer.status


@contextmanager
def _no_server(url: str) -> Iterator[Any]:
    yield _Remote(url)


def browser_first_answer(url: str | None = None, text: str = FIRST_MESSAGE) -> float:
    """Seconds from asking for the page (fresh browser, fresh session) to five cards on it.

    Starts its own server on the shipped model unless ``url`` points at a running one. The
    browser's own start is not counted; page load, session, typing, the API call and rendering
    are.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with (live_server() if url is None else _no_server(url)) as server, browser(DESKTOP) as d:
        t0 = time.perf_counter()
        open_chat(d, server.url)
        d.find_element(By.ID, "message").send_keys(text + Keys.ENTER)
        wait(d, lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#thread li.card")) >= 5,
             msg="five cards never appeared")
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m tests.web_browser",
                                description="Browser helpers for the web chat page.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("screenshots", help="write docs/screenshots/*.png")
    s.add_argument("--out", type=Path, default=DOCS_SCREENSHOT_DIR)
    s.add_argument("--url", help="a running server instead of starting one")
    sub.add_parser("first-answer", help="print seconds from page load to five cards")
    args = p.parse_args(argv)
    reason = browser_unavailable()
    if reason:
        print(f"cannot run a browser: {reason}", file=sys.stderr)
        return 2
    if args.cmd == "screenshots":
        for path in take_screenshots(args.out, url=args.url):
            print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    else:
        print(f"{browser_first_answer():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
