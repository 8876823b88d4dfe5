"""Directory artifacts replaced atomically: build in a temp dir, rename into place, never lose one.

The Annoy index and the CF model are both directories that a server reads while a job rewrites
them. The protocol, in one place: one writer per target (an ``flock``), the new directory is
written and fsynced beside the target, the old one is renamed aside and the new one renamed
in, and whatever a writer killed half-way left behind is repaired by the next writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

__all__ = ["exclusive", "fsync", "publish", "recover", "sha256", "siblings", "staging",
           "swap_into_place"]

log = logging.getLogger("moodtune.indexing")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync(path: Path) -> None:
    """Flush a file or directory so a power cut right after the rename cannot lose it."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def siblings(out: Path, kind: str) -> list[Path]:
    """Temp (``kind="tmp"``) or renamed-away (``"old"``) directories beside ``out``."""
    return sorted(out.parent.glob(f".{out.name}.{kind}-*"))


def recover(out: Path, what: str) -> None:
    """Undo what a writer killed between its two renames left behind (call with the lock held).

    Target missing but a renamed-away old copy present: put the old (complete) one back. Any
    other leftover temp/old directory is garbage from an interrupted write.
    """
    olds = siblings(out, "old")
    if not out.exists() and olds:
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        log.warning("restoring %s %s from an interrupted swap (%s)", what, out, newest.name)
        os.rename(newest, out)
        olds.remove(newest)
    for stale in [*olds, *siblings(out, "tmp")]:
        log.info("removing leftover %s", stale)
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def exclusive(out: Path, busy: Callable[[Path], Exception]) -> Iterator[None]:
    """One writer per target; ``busy(lock_path)`` is raised when another one holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no cross-process lock on Windows
        yield
        return
    lock_path = out.parent / f".{out.name}.lock"
    with lock_path.open("a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise busy(lock_path) from exc
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``, replacing an existing directory without ever losing it."""
    old: Path | None = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    fsync(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def publish(tmp: Path, out: Path, names: Iterable[str]) -> None:
    """Make the finished ``tmp`` directory durable (its files, then itself) and swap it in."""
    for name in names:
        fsync(tmp / name)
    fsync(tmp)
    swap_into_place(tmp, out)


@contextlib.contextmanager
def staging(out: Path, what: str, error: Callable[[str], Exception],
            busy: Callable[[Path], Exception]) -> Iterator[Path]:
    """The writer's side of the protocol, up to :func:`publish`: yield an empty directory beside
    ``out`` to build the new ``what`` in, holding the lock, after repairing a crashed writer.

    The caller ends by publishing from it. Whatever fails before then removes the staging
    directory and leaves ``out`` as it was; ``OSError``s are raised as ``error(message)``.
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create {out.parent}: {exc}") from exc
    with exclusive(out, busy):
        recover(out, what)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            yield tmp
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError):
                raise error(f"writing the {what} to {out} failed: {exc}") from exc
            raise
