"""CF models that travel through the shared database, so every replica serves the newest one.

Replicas behind one PostgreSQL database may run on hosts without a shared disk, each loading
the CF artifact from its own ``CF_PATH``. A ``/retrain`` (or an operator's ``moodtune train-cf``)
on one of them would leave the others on the old model. So the newest artifact is also stored
in the database (``cf_models``, migration 005) as a plain tar of exactly the files
``indexing.cf.save_cf`` writes, and every replica, on its periodic CF check, compares the
store's newest model with the one it serves:

* the store's is newer (by ``(trained_at, model_id)``, one total order on every replica, so
  they converge): fetch it, unpack it into a staging dir beside ``CF_PATH``, verify it loads
  (:meth:`indexing.cf.CFModel.load` checks sizes, sha256s, shapes, finiteness) and only then
  swap it in atomically (:func:`indexing.atomic.publish`). A corrupt or hostile archive never
  replaces a working model;
* ours is newer (trained here, or dropped into ``CF_PATH`` by a cron job): publish it, so the
  others follow. An older local model found at start-up is therefore *not* published — the
  store's newer one is adopted instead.

Store failures are the caller's to log; nothing here unloads the model being served.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import math
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from indexing.atomic import publish, staging
from indexing.cf import DATA_FILES, INFO_FILE, CFLoadError, CFModel

log = logging.getLogger("moodtune.cf_share")

__all__ = [
    "ARCHIVE_NAMES",
    "MAX_ARCHIVE_BYTES",
    "CFShareBusyError",
    "CFShareError",
    "CFStore",
    "CFSync",
    "ModelStamp",
    "install_cf",
    "pack_cf",
    "stamp_of",
]

#: The only paths an archive may hold (and must hold, each once).
ARCHIVE_NAMES: tuple[str, ...] = (*DATA_FILES, INFO_FILE)
#: Refuse bigger archives: a model of ~1M users × 64 float32 factors is ~260 MB; past this a
#: shared volume or an object store is the better road, and a bad row must not fill the disk.
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024


class CFShareError(RuntimeError):
    """A CF model could not be packed or installed; the model already in place is unchanged."""


class CFShareBusyError(CFShareError):
    """Another writer (a local ``train-cf``) holds the CF_PATH lock; worth another try."""


class CFStore(Protocol):
    """What :class:`CFSync` needs from a store (``bot.store_pg.PgStore``, ``bot.store.Store``)."""

    async def cf_publish(self, model_id: str, trained_at: float, archive: bytes) -> bool: ...

    async def cf_latest(self) -> tuple[str, float] | None: ...

    async def cf_archive(self, model_id: str) -> bytes | None: ...


@dataclass(frozen=True, slots=True, order=True)
class ModelStamp:
    """Where a model stands in the one order all replicas agree on: newer ``trained_at`` wins,
    ``model_id`` breaks a tie (two models trained in the same second on two hosts)."""

    trained_at: float
    model_id: str


def trained_at_seconds(value: Any) -> float:
    """``cf.json``'s ``trained_at`` (ISO 8601; naive means UTC) as unix seconds; 0.0 when it is
    missing or unreadable, so such a model counts as the oldest and never displaces another."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    try:
        when = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def stamp_of(info: Mapping[str, Any] | None) -> ModelStamp | None:
    """The stamp of a loaded model's ``info`` (``CFModel.info``), or None without a model id."""
    if not info or not info.get("model_id"):
        return None
    return ModelStamp(trained_at_seconds(info.get("trained_at")), str(info["model_id"]))


# ---- packing ------------------------------------------------------------------------------------
def pack_cf(path: str | Path, *, expect_model_id: str | None = None,
            max_bytes: int = MAX_ARCHIVE_BYTES) -> tuple[ModelStamp, bytes]:
    """Tar the installed artifact at ``path`` (exactly :data:`ARCHIVE_NAMES`); return its stamp
    and the bytes.

    Every file is read into memory once and checked against the sizes and sha256s in the
    ``cf.json`` read in the same pass: if a writer swapped the directory in between, the
    mismatch raises :class:`CFShareError` (try again at the next check) instead of shipping a
    mix of two models. ``expect_model_id`` refuses a different model than the one meant.
    """
    root = Path(path)
    try:
        raw_info = (root / INFO_FILE).read_bytes()
        info = json.loads(raw_info)
    except (OSError, ValueError) as exc:
        raise CFShareError(f"cannot read {root / INFO_FILE} to share it ({exc})") from exc
    stamp = stamp_of(info if isinstance(info, dict) else None)
    if stamp is None:
        raise CFShareError(f"{root / INFO_FILE} has no model_id; retrain with `moodtune train-cf`")
    if expect_model_id is not None and stamp.model_id != expect_model_id:
        raise CFShareError(f"{root} now holds {stamp.model_id}, not {expect_model_id} (a new "
                           "model landed meanwhile); it is shared at the next check")
    files = info.get("files") if isinstance(info.get("files"), dict) else {}
    blobs: dict[str, bytes] = {}
    for name in DATA_FILES:
        try:
            data = (root / name).read_bytes()
        except OSError as exc:
            raise CFShareError(f"cannot read {root / name} to share it ({exc})") from exc
        meta = files.get(name) or {}
        if len(data) != meta.get("size") or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise CFShareError(f"{root / name} does not match cf.json (replaced while reading, "
                               "or corrupt); not shared")
        blobs[name] = data
    blobs[INFO_FILE] = raw_info
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ARCHIVE_NAMES:  # fixed order, mtime 0: one model packs to one byte string
            member = tarfile.TarInfo(name)
            member.size, member.mode = len(blobs[name]), 0o644
            tar.addfile(member, io.BytesIO(blobs[name]))
    archive = buf.getvalue()
    if len(archive) > max_bytes:
        raise CFShareError(f"CF model {stamp.model_id} packs to {len(archive)} bytes, over the "
                           f"{max_bytes}-byte limit for sharing through the database; share "
                           "CF_PATH on a volume instead")
    return stamp, archive


def _read_members(archive: bytes, max_bytes: int) -> dict[str, bytes]:
    """The archive's files by name; anything but exactly :data:`ARCHIVE_NAMES` as plain files
    is refused (no directories, links, devices, other names, repeats or ``../`` tricks)."""
    if len(archive) > max_bytes:
        raise CFShareError(f"the archive has {len(archive)} bytes, over the {max_bytes}-byte "
                           "limit")
    out: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            while (member := tar.next()) is not None:
                if member.name not in ARCHIVE_NAMES:
                    raise CFShareError(f"the archive holds {member.name!r}, which is not a CF "
                                       f"artifact file ({', '.join(ARCHIVE_NAMES)})")
                if not member.isreg():
                    raise CFShareError(f"{member.name!r} in the archive is not a plain file")
                if member.name in out:
                    raise CFShareError(f"the archive holds {member.name!r} twice")
                total += member.size
                if total > max_bytes:
                    raise CFShareError(f"the archive unpacks to over {max_bytes} bytes")
                fh = tar.extractfile(member)
                data = fh.read() if fh is not None else b""
                if len(data) != member.size:
                    raise CFShareError(f"{member.name!r} is truncated in the archive")
                out[member.name] = data
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CFShareError(f"the archive is not a readable tar ({exc})") from exc
    missing = [n for n in ARCHIVE_NAMES if n not in out]
    if missing:
        raise CFShareError(f"the archive lacks {missing}")
    return out


def install_cf(archive: bytes, out: str | Path, *, expect_model_id: str | None = None,
               min_events: int = 5, max_bytes: int = MAX_ARCHIVE_BYTES) -> ModelStamp:
    """Unpack a shared model beside ``out``, verify it loads, and only then swap it in.

    The staging dir, lock and swap are :mod:`indexing.atomic`'s (the ones ``save_cf`` uses), so
    a reader of ``out`` sees the old model or the whole new one, and a local ``train-cf``
    writing at the same moment makes this fail (retried at the next check) rather than mix.
    Raises :class:`CFShareError`; ``out`` is untouched on every failure.
    """
    members = _read_members(archive, max_bytes)
    target = Path(out).absolute()
    with staging(target, "shared CF model", CFShareError, lambda lock: CFShareBusyError(
            f"a CF model is being written to {target} (lock {lock}); installing the shared "
            "one at the next check")) as tmp:
        for name, data in members.items():
            (tmp / name).write_bytes(data)
        try:
            model = CFModel.load(tmp, min_events=min_events)
        except CFLoadError as exc:
            raise CFShareError(f"the shared CF model does not load ({exc}); keeping the "
                               "current one") from exc
        stamp = stamp_of(model.info)
        if stamp is None or (expect_model_id is not None and stamp.model_id != expect_model_id):
            raise CFShareError(f"the archive holds model {model.model_id}, not "
                               f"{expect_model_id}; keeping the current one")
        publish(tmp, target, ARCHIVE_NAMES)
    return stamp


# ---- keeping replicas in step ---------------------------------------------------------------
class CFSync:
    """One replica's side of the shared CF model: adopt a newer one, publish a newer own one.

    The engine calls :meth:`check` from its background CF check (never on a request's path)
    with the stamp of the model it serves. Archives that failed to install are remembered and
    not fetched again, so one bad row does not cost a download every interval.
    """

    def __init__(self, store: CFStore, cf_path: str | Path, *, min_events: int = 5,
                 max_bytes: int = MAX_ARCHIVE_BYTES) -> None:
        self.store = store
        self.cf_path = Path(cf_path)
        self.min_events = min_events
        self.max_bytes = max_bytes
        self._refused: set[str] = set()

    async def check(self, serving: ModelStamp | None) -> bool:
        """Reconcile with the store; ``True`` when a newer model was installed at ``cf_path``
        (the caller reloads it). Raises ``StoreError`` (store down) and :class:`CFShareError`
        (packing failed) for the caller to log; a refused archive is logged here."""
        latest = await self.store.cf_latest()
        shared = None if latest is None else ModelStamp(float(latest[1]), str(latest[0]))
        if shared is not None and (serving is None or shared > serving):
            return await self._adopt(shared)
        if serving is not None and (shared is None or serving > shared):
            await self.publish(serving)
        return False

    async def publish(self, serving: ModelStamp) -> bool:
        """Put the model at ``cf_path`` (which must be ``serving``) in the store; ``True`` if
        it was new there."""
        loop = asyncio.get_running_loop()
        stamp, archive = await loop.run_in_executor(None, lambda: pack_cf(
            self.cf_path, expect_model_id=serving.model_id, max_bytes=self.max_bytes))
        new = await self.store.cf_publish(stamp.model_id, stamp.trained_at, archive)
        if new:
            log.info("CF model %s published for the other replicas (%d bytes)", stamp.model_id,
                     len(archive))
        return new

    async def _adopt(self, shared: ModelStamp) -> bool:
        if shared.model_id in self._refused:
            return False
        archive = await self.store.cf_archive(shared.model_id)
        if archive is None:  # pruned between the two reads; the next check sees the newer one
            return False
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, lambda: install_cf(
                archive, self.cf_path, expect_model_id=shared.model_id,
                min_events=self.min_events, max_bytes=self.max_bytes))
        except CFShareError as exc:
            if not isinstance(exc, CFShareBusyError):  # a busy lock is worth another try
                self._refused.add(shared.model_id)
            log.warning("shared CF model %s not installed: %s", shared.model_id, exc)
            return False
        log.info("CF model %s adopted from the shared store", shared.model_id)
        return True
