"""The collaborative-filtering artifact: its on-disk format, its atomic writer, and the scorer.

Why here and numpy-only: the serving engine must load and score a CF model without importing
implicit, scipy or torch (``training/`` owns those and writes the factors); ``training.cf`` calls
:func:`save_cf` so the format is defined in exactly one place, next to the reader that checks it.

Layout of an artifact directory (``DATA_DIR/cf`` by default)::

    cf.json            format, format_version, model_id, trained_at, data range, counts,
                       hyper-parameters, metrics, and size + sha256 of every other file
    user_factors.npy   (n_users, factors) float32
    item_factors.npy   (n_items, factors) float32
    user_events.npy    (n_users,) int64: feedback rows per user in the training window
    ids.json           {"users": [...], "items": [...]} in factor-row order

A new artifact is written to a hidden temp dir beside the target and renamed into place, so a
reader sees either the old model or the complete new one; a failed or interrupted write leaves
the old one untouched. ``cf.json`` is written last: a directory without it is never valid.

Scores. ALS scores (``user · item``) are not probabilities and their spread differs per user,
while the re-ranker blends CF with a mood cosine and expects [0, 1]. Each user's raw score is
therefore turned into a z-score against the distribution of that user's scores over *all*
items (mean ``u·mean(V)`` and variance ``uᵀ cov(V) u``, exact and O(factors²) per user, so no
user × item matrix is ever built) and squashed with a logistic (≈ the normal CDF): 0.5 is "an
average song for this person", ~0.98 is their top 2 %. The z-score is shrunk by
``n / (n + shrink_events)`` (n = the user's training events), so a user with a handful of
reactions gets gentle nudges, not a full-strength verdict from a noisy profile.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from indexing.atomic import publish, sha256, staging

log = logging.getLogger("moodtune.cf")

__all__ = [
    "DEFAULT_SHRINK_EVENTS",
    "FORMAT",
    "FORMAT_VERSION",
    "INFO_FILE",
    "CFLoadError",
    "CFModel",
    "CFNotFoundError",
    "CFSaveError",
    "save_cf",
]

FORMAT = "moodtune-cf"
FORMAT_VERSION = 1
INFO_FILE = "cf.json"
USER_FACTORS = "user_factors.npy"
ITEM_FACTORS = "item_factors.npy"
USER_EVENTS = "user_events.npy"
IDS_FILE = "ids.json"
DATA_FILES = (USER_FACTORS, ITEM_FACTORS, USER_EVENTS, IDS_FILE)
DEFAULT_SHRINK_EVENTS = 10.0
# 1.702·z through a logistic is within 0.01 of the normal CDF everywhere (no scipy needed).
_LOGISTIC_SCALE = 1.702
_RETRAIN = "retrain it with `moodtune train-cf` (or /retrain)"


class CFLoadError(RuntimeError):
    """A CF artifact is missing, unreadable, corrupt or of another format; the message says which."""


class CFNotFoundError(CFLoadError):
    """No artifact at the path (nothing trained yet)."""


class CFSaveError(RuntimeError):
    """Writing an artifact failed; any previous artifact at the target is unchanged."""


# ---- writing --------------------------------------------------------------------------------
def _check_arrays(user_ids: Sequence[str], item_ids: Sequence[str], user_factors: np.ndarray,
                  item_factors: np.ndarray, user_events: np.ndarray) -> None:
    if len(user_ids) == 0 or len(item_ids) == 0:
        raise CFSaveError("refusing to write a CF model without users or items")
    if user_factors.ndim != 2 or item_factors.ndim != 2:
        raise CFSaveError("factors must be 2-d arrays")
    if user_factors.shape[1] != item_factors.shape[1]:
        raise CFSaveError(f"user factors have {user_factors.shape[1]} columns, item factors "
                          f"{item_factors.shape[1]}")
    if user_factors.shape[0] != len(user_ids) or item_factors.shape[0] != len(item_ids):
        raise CFSaveError(f"{user_factors.shape[0]} user / {item_factors.shape[0]} item factor rows "
                          f"for {len(user_ids)} user / {len(item_ids)} item ids")
    if user_events.shape != (len(user_ids),):
        raise CFSaveError(f"user_events has shape {user_events.shape}, expected ({len(user_ids)},)")
    if len(set(user_ids)) != len(user_ids) or len(set(item_ids)) != len(item_ids):
        raise CFSaveError("user and item ids must be unique")
    if not (np.isfinite(user_factors).all() and np.isfinite(item_factors).all()):
        raise CFSaveError("factors contain NaN or infinity (training diverged); try a larger "
                          "regularization")


def save_cf(out_dir: str | os.PathLike[str], *, user_ids: Sequence[str], item_ids: Sequence[str],
            user_factors: np.ndarray, item_factors: np.ndarray, user_events: np.ndarray,
            info: Mapping[str, Any]) -> Path:
    """Write a CF artifact and atomically install it at ``out_dir``; return the final path.

    ``info`` is the trainer's part of ``cf.json`` (trained_at, data range, hyper-parameters,
    metrics, ...); the format fields, counts, ``model_id`` and file checksums are added here.
    Raises :class:`CFSaveError`; an existing artifact at ``out_dir`` survives every failure.
    """
    uf = np.ascontiguousarray(user_factors, dtype=np.float32)
    itf = np.ascontiguousarray(item_factors, dtype=np.float32)
    ev = np.ascontiguousarray(user_events, dtype=np.int64)
    users, items = [str(u) for u in user_ids], [str(i) for i in item_ids]
    _check_arrays(users, items, uf, itf, ev)
    out = Path(out_dir).absolute()
    with staging(out, "CF model", CFSaveError, lambda lock: CFSaveError(
            f"another CF training is writing {out} (lock {lock}); wait for it to finish")) as tmp:
        np.save(tmp / USER_FACTORS, uf)
        np.save(tmp / ITEM_FACTORS, itf)
        np.save(tmp / USER_EVENTS, ev)
        with (tmp / IDS_FILE).open("w", encoding="utf-8") as fh:
            json.dump({"users": users, "items": items}, fh, ensure_ascii=False)
        files = {name: {"size": (tmp / name).stat().st_size, "sha256": sha256(tmp / name)}
                 for name in DATA_FILES}
        now = datetime.now(UTC)
        full = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_id": f"cf-{now:%Y%m%dT%H%M%S}-{files[USER_FACTORS]['sha256'][:8]}",
            "trained_at": now.isoformat(timespec="seconds"),
            **dict(info),
            "n_users": len(users),
            "n_items": len(items),
            "factors": int(uf.shape[1]),
            "files": files,
        }
        with (tmp / INFO_FILE).open("w", encoding="utf-8") as fh:
            json.dump(full, fh, ensure_ascii=False, indent=2)
            fh.write("\n")
        publish(tmp, out, (*DATA_FILES, INFO_FILE))
    return out


# ---- reading / scoring ----------------------------------------------------------------------
def _read_info(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CFNotFoundError(f"no CF model at {path}; train one with `moodtune train-cf`")
    if not path.is_dir():
        raise CFLoadError(f"{path} is not a CF model directory; point CF_PATH at the directory "
                          "`moodtune train-cf --out` wrote")
    info_path = path / INFO_FILE
    if not info_path.is_file():
        raise CFLoadError(f"{info_path} is missing (incomplete or foreign directory); {_RETRAIN}")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CFLoadError(f"{info_path} is unreadable ({exc}); {_RETRAIN}") from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CFLoadError(f"{info_path} is not a moodtune CF model; {_RETRAIN}")
    if info.get("format_version") != FORMAT_VERSION:
        raise CFLoadError(f"{path} has CF format version {info.get('format_version')}, this "
                          f"moodtune reads version {FORMAT_VERSION}; {_RETRAIN}")
    missing = {"n_users", "n_items", "factors", "files"} - info.keys()
    if missing:
        raise CFLoadError(f"{info_path} lacks {sorted(missing)}; {_RETRAIN}")
    return info


def _verify_file(path: Path, meta: Any) -> None:
    if not path.is_file():
        raise CFLoadError(f"{path} is missing; {_RETRAIN}")
    if not isinstance(meta, dict) or "size" not in meta or "sha256" not in meta:
        raise CFLoadError(f"cf.json has no checksum for {path.name}; {_RETRAIN}")
    try:
        size = path.stat().st_size
        digest = sha256(path)
    except OSError as exc:
        raise CFLoadError(f"cannot read {path} ({exc}); {_RETRAIN}") from exc
    if size != meta["size"]:
        raise CFLoadError(f"{path} has {size} bytes, cf.json says {meta['size']} (truncated or "
                          f"replaced); {_RETRAIN}")
    if digest != meta["sha256"]:
        raise CFLoadError(f"{path} does not match its checksum in cf.json (corrupt); {_RETRAIN}")


def _load_array(path: Path, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CFLoadError(f"{path} is not a readable .npy file ({exc}); {_RETRAIN}") from exc
    if arr.shape != shape:
        raise CFLoadError(f"{path} has shape {arr.shape}, cf.json implies {shape}; {_RETRAIN}")
    return np.ascontiguousarray(arr, dtype=dtype)


class CFModel:
    """A loaded CF artifact: per-user scores in [0, 1] for the songs the model knows.

    Read-only after :meth:`load`, so one instance is shared by all worker threads; the engine
    swaps in a new instance by reference (hot reload), never mutating a live one.
    """

    def __init__(self, info: dict[str, Any], user_ids: Sequence[str], item_ids: Sequence[str],
                 user_factors: np.ndarray, item_factors: np.ndarray, user_events: np.ndarray,
                 *, min_events: int, path: Path | None = None) -> None:
        if min_events < 0:
            raise ValueError(f"min_events must be >= 0, got {min_events}")
        self.info = info
        self.path = path
        self.min_events = int(min_events)
        self._user_row = {u: i for i, u in enumerate(user_ids)}
        self._item_row = {s: i for i, s in enumerate(item_ids)}
        self._U = user_factors
        self._V = item_factors
        self._events = user_events
        scoring = info.get("scoring") or {}
        self.shrink_events = float(scoring.get("shrink_events", DEFAULT_SHRINK_EVENTS))
        # Each user's score distribution over all items, exactly, without a user × item matrix.
        mean_item = item_factors.mean(axis=0, dtype=np.float64)
        centred = item_factors.astype(np.float64) - mean_item
        cov = centred.T @ centred / max(len(item_factors), 1)
        U = user_factors.astype(np.float64)
        self._mu = (U @ mean_item).astype(np.float32)
        var = np.einsum("ij,jk,ik->i", U, cov, U)
        self._sd = np.sqrt(np.maximum(var, 1e-12)).astype(np.float32)
        self._shrink = (user_events / (user_events + self.shrink_events)).astype(np.float32) \
            if self.shrink_events > 0 else np.ones(len(user_events), dtype=np.float32)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, min_events: int = 5) -> CFModel:
        """Load and verify the artifact at ``path`` (checksums, shapes, finite values).

        ``min_events``: users with fewer training events get ``None`` from :meth:`scores`
        (mood + popularity only) — a profile from two reactions is mostly noise.
        Raises :class:`CFNotFoundError` / :class:`CFLoadError` with what to do.
        """
        p = Path(path)
        info = _read_info(p)
        files = info["files"]
        if not isinstance(files, dict):
            raise CFLoadError(f"{p / INFO_FILE}: 'files' is not an object; {_RETRAIN}")
        for name in DATA_FILES:
            _verify_file(p / name, files.get(name))
        try:
            n_users, n_items, k = int(info["n_users"]), int(info["n_items"]), int(info["factors"])
        except (TypeError, ValueError) as exc:
            raise CFLoadError(f"{p / INFO_FILE} has non-numeric counts; {_RETRAIN}") from exc
        U = _load_array(p / USER_FACTORS, np.float32, (n_users, k))
        V = _load_array(p / ITEM_FACTORS, np.float32, (n_items, k))
        events = _load_array(p / USER_EVENTS, np.int64, (n_users,))
        try:
            ids = json.loads((p / IDS_FILE).read_text(encoding="utf-8"))
            users, items = ids["users"], ids["items"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CFLoadError(f"{p / IDS_FILE} is unreadable ({exc}); {_RETRAIN}") from exc
        if len(users) != n_users or len(items) != n_items:
            raise CFLoadError(f"{p / IDS_FILE} lists {len(users)} users / {len(items)} items, "
                              f"cf.json says {n_users} / {n_items}; {_RETRAIN}")
        if len(set(users)) != n_users or len(set(items)) != n_items:
            raise CFLoadError(f"{p / IDS_FILE} repeats an id; {_RETRAIN}")
        if not (np.isfinite(U).all() and np.isfinite(V).all()):
            raise CFLoadError(f"{p} holds NaN/infinite factors; {_RETRAIN}")
        return cls(info, users, items, U, V, events, min_events=min_events, path=p)

    # ---- introspection ------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return str(self.info.get("model_id", "?"))

    @property
    def n_users(self) -> int:
        return len(self._user_row)

    @property
    def n_items(self) -> int:
        return len(self._item_row)

    def events_of(self, user_id: str) -> int:
        """Training events of ``user_id`` (0 if the model never saw them)."""
        row = self._user_row.get(user_id)
        return 0 if row is None else int(self._events[row])

    def __contains__(self, song_id: object) -> bool:
        return song_id in self._item_row

    def __repr__(self) -> str:
        return (f"CFModel({self.model_id}, users={self.n_users}, items={self.n_items}, "
                f"min_events={self.min_events})")

    # ---- scoring ------------------------------------------------------------------------
    def raw_scores(self, user_id: str, song_ids: Sequence[str]) -> dict[str, float] | None:
        """Unscaled ``user · item`` for the known songs (None for an unknown user); for tests
        and diagnostics — ranking wants :meth:`scores`."""
        row = self._user_row.get(user_id)
        if row is None:
            return None
        known = [(s, self._item_row[s]) for s in song_ids if s in self._item_row]
        if not known:
            return {}
        raw = self._V[[r for _, r in known]] @ self._U[row]
        return {s: float(x) for (s, _), x in zip(known, raw, strict=True)}

    def scores(self, user_id: str, song_ids: Sequence[str]) -> dict[str, float] | None:
        """The user's taste for ``song_ids`` in [0, 1], or None for a cold user.

        None when the user is unknown or has fewer than ``min_events`` training events: the
        engine then ranks by mood + popularity only. Songs the model never saw are *omitted*
        (not scored 0), so the re-ranker gives them the mean and new catalogue entries are not
        buried under songs that merely have history.
        """
        row = self._user_row.get(user_id)
        if row is None or self._events[row] < self.min_events:
            return None
        known = [(s, self._item_row[s]) for s in song_ids if s in self._item_row]
        if not known:
            return {}
        raw = self._V[[r for _, r in known]] @ self._U[row]
        z = (raw - self._mu[row]) / self._sd[row] * self._shrink[row]
        out = 1.0 / (1.0 + np.exp(-_LOGISTIC_SCALE * np.clip(z, -30.0, 30.0)))
        return {s: float(x) for (s, _), x in zip(known, out, strict=True)}

