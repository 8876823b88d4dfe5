"""A throwaway PostgreSQL server for the test run (see ../shared/FACTS.md, "Real services").

Why a private server rather than a shared one: tests must not depend on (or touch) anything
already running on the machine, and ``fsync=off`` on a temp dir makes it fast (about 3 s to
start, tens of ms per fresh database). The server listens on 127.0.0.1 on a free port and is
stopped and deleted when the session ends. Without the Debian ``postgresql`` binaries the
PostgreSQL variants of the tests skip, saying so; they never fail for that reason.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin`` holding ``initdb`` and ``pg_ctl``, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    for initdb in reversed(found):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running server: ``url(db)`` for a database, ``create_database()`` for a fresh one."""

    bindir: Path
    root: Path
    port: int
    _as_postgres: list[str] = field(default_factory=list)
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        """A new, empty database (``t_<n>``): each test starts from nothing."""
        name = f"t_{next(self._names)}"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return name

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as_postgres, *args], capture_output=True, text=True,
                              timeout=60, check=False)

    def log_tail(self) -> str:
        try:
            return (self.root / "pg.log").read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                  "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PgServer:
    """initdb + pg_ctl start in a temp dir; raises RuntimeError (with the log) on failure.

    ``initdb`` refuses to run as root, so as root everything runs as the ``postgres`` user
    (``runuser``), in a directory it owns.
    """
    bindir = find_pg_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL binaries not found (/usr/lib/postgresql/*/bin/initdb);"
                                " install the Debian package 'postgresql'")
    root = Path(tempfile.mkdtemp(prefix="moodtune-pg-"))
    as_postgres: list[str] = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            raise FileNotFoundError("running as root without runuser: cannot start PostgreSQL")
        shutil.chown(root, user="postgres")
        root.chmod(0o700)
        as_postgres = [runuser, "-u", "postgres", "--"]
    server = PgServer(bindir, root, _free_port(), as_postgres)
    steps = (
        [str(bindir / "initdb"), "-D", str(server.data), "-A", "trust", "-U", "postgres",
         "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
        [str(bindir / "pg_ctl"), "-D", str(server.data), "-l", str(root / "pg.log"), "-w",
         "-t", "30", "-o", f"-k {root} -c listen_addresses=127.0.0.1 -p {server.port} "
         "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
         "-c max_connections=200", "start"],
    )
    for cmd in steps:
        done = server._run(*cmd)
        if done.returncode != 0:
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(f"{Path(cmd[0]).name} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-800:]} {tail}")
    return server


def server_or_skip() -> Iterator[PgServer]:
    """Yield a started server for a pytest fixture, or skip the tests that need it.

    Missing binaries skip; a server that is installed but will not start skips too, unless
    ``MOODTUNE_REQUIRE_SERVICES`` is set: CI sets it
    after installing the packages, so there the tests run or fail, never skip silently.
    """
    import pytest

    required = os.environ.get("MOODTUNE_REQUIRE_SERVICES")
    try:
        server = start_server()
    except FileNotFoundError as exc:
        if required:
            raise
        pytest.skip(f"PostgreSQL tests need the server binaries: {exc}")
    except RuntimeError as exc:
        if required:
            raise
        pytest.skip(f"PostgreSQL is installed but did not start here: {exc}")
    try:
        yield server
    finally:
        server.stop()
