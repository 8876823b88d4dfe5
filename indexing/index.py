"""The song index: Annoy (angular) over the catalogue's 6-d emotion vectors, plus fast metadata.

Layout of an index directory (format version 2)::

    songs.ann           Annoy forest, metric "angular", dim 6 (mmapped on load, not read)
    songs.vectors.npy   (n, 6) float32 vectors, row i = Annoy item i (mmapped)
    songs.meta.npz      columnar metadata, row i = Annoy item i (see ``_StrColumn``), and the
                        song profile: energy/danceability as float32 (NaN = unknown), situations
                        and themes as bitmasks over ``indexing.facets`` (so a request can filter
                        700k songs with one numpy expression), provenance and per-source moods as
                        a JSON string column read only for the songs a query returns
    index.json          dim, metric, n_trees, count, model_fingerprint, labels, created_at,
                        format_version, songs.ann size + sha256 — written last

Why columnar metadata instead of the catalogue's JSON Lines or a pickle: at 700k songs JSON takes
seconds to parse and a list of ``Song`` objects costs hundreds of MB, while a UTF-8 blob plus an
offsets array per string column loads in a few hundred milliseconds and allocates a ``Song`` only
for the handful of rows a query returns. No pickle, so opening an index never executes code.

Why a temp directory and renames: the bot keeps serving from the old index while a new one is
built (``/reindex``), and a crash or a full disk half-way must never leave it without one. The
new index is written completely into ``.<name>.tmp-*`` beside the target, then the old directory
is renamed away, the new one renamed in and the old one deleted. If anything fails before the
second rename, the old directory is untouched (or renamed back). A build killed between the two
renames is repaired by the next build (see ``indexing.atomic.recover``); readers that open the directory in
that instant get :class:`IndexNotFoundError` and keep their current index.

Threads: a loaded :class:`SongIndex` is read-only. Annoy's ``get_nns_by_vector`` only reads the
mmapped forest and releases the GIL, so many threads may ``search`` one instance at the same time;
the lazily built id → row map and the ``Song`` cache are guarded for that. To switch to a new
index, load it and swap the reference; do not :meth:`SongIndex.close` an index another thread may
still be searching (unmapping under a running query would crash the process).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from array import array
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from indexing.atomic import publish, sha256, staging
from indexing.catalog import Catalog, Song
from indexing.facets import SEASONS, SITUATIONS, THEMES, seasons_in_title
from inference.emotions import LABELS, NUM_EMOTIONS

__all__ = [
    "ANN_FILE",
    "DEFAULT_N_TREES",
    "DEFAULT_SEARCH_K",
    "FORMAT_VERSION",
    "INFO_FILE",
    "META_FILE",
    "VECTORS_FILE",
    "ExactSearch",
    "IndexBuildError",
    "IndexCorruptError",
    "IndexDimensionError",
    "IndexFingerprintError",
    "IndexLoadError",
    "IndexNotFoundError",
    "SongFilter",
    "SongIndex",
    "SongIndexError",
    "UnknownSongError",
    "build_index",
    "cosine_from_angular",
    "facet_mask",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: song profiles (facets); a version-1 index is rebuilt
METRIC = "angular"
ANN_FILE = "songs.ann"
VECTORS_FILE = "songs.vectors.npy"
META_FILE = "songs.meta.npz"
INFO_FILE = "index.json"

DEFAULT_N_TREES = 10
# Nodes Annoy inspects per query (benchmarks/index.py, 700k synthetic songs, 10 trees): 1000 gives
# recall@10 1.000 at ~0.27 ms and keeps the engine's 60-candidate fetch at >= 0.999, where 500
# drops to ~0.99; Annoy's own default (n_trees * k = 100) has recall@10 ~0.97.
DEFAULT_SEARCH_K = 1000

_REBUILD = "rebuild it with `moodtune index`"
_STR_COLUMNS = ("song_id", "title", "artist", "album", "genre", "melon_id", "source", "extra",
                "tempo", "lang", "profile")
_NULLABLE = ("album", "genre", "melon_id", "tempo", "lang")
_FLOAT_FACETS = ("energy", "dance")
_MASK_FACETS = {"situations": SITUATIONS, "themes": THEMES}


def facet_mask(values: Sequence[str], vocabulary: Sequence[str]) -> int:
    """Bitmask of ``values`` over ``vocabulary`` (unknown words are ignored)."""
    bits = 0
    for v in values:
        if v in vocabulary:
            bits |= 1 << vocabulary.index(v)
    return bits


@dataclass(frozen=True, slots=True)
class SongFilter:
    """Hard constraints from a request ("힙합", "아이유", "운동할 때", "잔잔한"): a song must meet
    every non-empty one. Lists mean "any of"."""

    genres: tuple[str, ...] = ()
    artists: tuple[str, ...] = ()
    situations: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    energy_min: float | None = None
    energy_max: float | None = None
    exclude_artists: tuple[str, ...] = ()
    seasons: tuple[str, ...] = ()  # titled for one of them (``indexing.facets.seasons_in_title``)
    exclude_genres: tuple[str, ...] = ()  # refused ("발라드 말고"): never relaxed

    def __bool__(self) -> bool:
        return bool(self.genres or self.artists or self.situations or self.themes
                    or self.energy_min is not None or self.energy_max is not None
                    or self.exclude_artists or self.seasons or self.exclude_genres)


# ---- errors ---------------------------------------------------------------------------------
class SongIndexError(Exception):
    """Base class for index build/load problems."""


class IndexBuildError(SongIndexError):
    """The index could not be built (empty catalogue, bad parameters, I/O failure)."""


class IndexLoadError(SongIndexError):
    """An index directory cannot be served: missing, corrupt or made for another model."""


class IndexNotFoundError(IndexLoadError):
    """The index directory (or one of its files) does not exist."""


class IndexCorruptError(IndexLoadError):
    """Files are truncated, unreadable or disagree with each other (e.g. item counts)."""


class IndexDimensionError(IndexLoadError):
    """The index was built for another vector size or emotion label order."""


class IndexFingerprintError(IndexLoadError):
    """The index was built from vectors of a different classifier than the one serving."""


class UnknownSongError(KeyError):
    """A song id that is not in the index."""

    def __str__(self) -> str:  # KeyError's default repr-quotes the whole message
        return str(self.args[0]) if self.args else "unknown song"


# ---- query validation -----------------------------------------------------------------------
def _unit_query(vec: Any) -> np.ndarray:
    """Validate a query vector and return it L2-normalised as float64 ``(6,)``.

    Cosine similarity of a zero or NaN vector is undefined; Annoy would silently return
    arbitrary songs for it, so reject it loudly instead.
    """
    try:
        q = np.asarray(vec, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"query vector must be {NUM_EMOTIONS} numbers: {exc}") from exc
    if q.ndim == 2 and q.shape[0] == 1:
        q = q[0]
    if q.shape != (NUM_EMOTIONS,):
        raise ValueError(
            f"query vector must have shape ({NUM_EMOTIONS},) — one value per emotion in "
            f"{', '.join(LABELS)} order — got shape {q.shape}"
        )
    if not np.isfinite(q).all():
        raise ValueError(f"query vector contains NaN or infinity: {q.tolist()}")
    norm = float(np.linalg.norm(q))
    if norm == 0.0:
        raise ValueError("query vector is all zeros: cosine similarity is undefined")
    return q / norm


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return int(k)


def _as_set(exclude: Collection[str]) -> Collection[str]:
    return exclude if isinstance(exclude, set | frozenset | dict) else set(exclude)


# ---- columnar metadata ----------------------------------------------------------------------
def _encode_strings(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 blob + ``n+1`` int64 offsets: compact, pickle-free, O(1) access to row i."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return blob, offsets


class _StrColumn:
    """Read side of ``_encode_strings``: decodes one row on demand."""

    __slots__ = ("_blob", "_off")

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self._blob = blob.tobytes()
        # array('q'), not a list: 8 bytes per row instead of ~36 (a list of 700k ints per column
        # cost ~200 MB of RSS over 8 columns), and indexing it is as fast as a list.
        self._off = array("q", np.ascontiguousarray(offsets, dtype=np.int64).tobytes())

    def __len__(self) -> int:
        return len(self._off) - 1

    def __getitem__(self, i: int) -> str:
        return self._blob[self._off[i] : self._off[i + 1]].decode("utf-8")

    def all(self) -> list[str]:
        b, off = self._blob, self._off
        return [b[off[i] : off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def _metadata_arrays(catalog: Catalog) -> dict[str, np.ndarray]:
    songs = catalog.songs
    arrays: dict[str, np.ndarray] = {}
    cols: dict[str, list[str]] = {
        "song_id": [s.song_id for s in songs],
        "title": [s.title for s in songs],
        "artist": [s.artist for s in songs],
        "album": [s.album or "" for s in songs],
        "genre": [s.genre or "" for s in songs],
        "melon_id": [s.melon_id or "" for s in songs],
        "source": [s.source for s in songs],
        "extra": [json.dumps(s.extra, ensure_ascii=False) if s.extra else "" for s in songs],
        "tempo": [s.tempo or "" for s in songs],
        "lang": [s.lang or "" for s in songs],
        # situations/themes also here, in their listed order (the masks are unordered)
        "profile": [json.dumps({"provenance": s.provenance, "moods": {
            k: [round(float(x), 6) for x in v] for k, v in s.moods.items()},
            "situations": list(s.situations), "themes": list(s.themes)},
            ensure_ascii=False) if s.has_profile else "" for s in songs],
    }
    for name, values in cols.items():
        arrays[f"{name}.blob"], arrays[f"{name}.off"] = _encode_strings(values)
    for name in _NULLABLE:
        arrays[f"{name}.null"] = np.fromiter(
            (getattr(s, name) is None for s in songs), dtype=bool, count=len(songs)
        )
    arrays["year"] = np.fromiter((s.year or 0 for s in songs), dtype=np.int32, count=len(songs))
    arrays["year.null"] = np.fromiter((s.year is None for s in songs), dtype=bool, count=len(songs))
    arrays["popularity"] = np.fromiter(
        (s.popularity for s in songs), dtype=np.float64, count=len(songs)
    )
    for name in _FLOAT_FACETS:
        arrays[name] = np.fromiter(
            (np.nan if getattr(s, name) is None else getattr(s, name) for s in songs),
            dtype=np.float32, count=len(songs))
    for name, vocab in _MASK_FACETS.items():
        arrays[f"{name}.mask"] = np.fromiter(
            (facet_mask(getattr(s, name), vocab) for s in songs), dtype=np.uint32,
            count=len(songs))
    return arrays


# ---- build ----------------------------------------------------------------------------------
def _write_annoy(
    vectors: np.ndarray, path: Path, *, n_trees: int, seed: int, n_jobs: int, progress: bool
) -> None:
    from annoy import AnnoyIndex

    ann = AnnoyIndex(NUM_EMOTIONS, METRIC)
    ann.set_seed(seed)
    rows = vectors.tolist()
    items: Any = range(len(rows))
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="adding songs", unit="song", unit_scale=True)
    for i in items:
        ann.add_item(i, rows[i])
    if progress:
        print(f"building {n_trees} trees…", flush=True)
    ann.build(n_trees, n_jobs=n_jobs)
    ann.save(str(path), prefault=False)
    ann.unload()


def _write_metadata(catalog: Catalog, tmp: Path) -> None:
    np.save(tmp / VECTORS_FILE, np.ascontiguousarray(catalog.vectors, dtype=np.float32))
    np.savez(tmp / META_FILE, **_metadata_arrays(catalog))  # uncompressed: loads faster


def _write_info(tmp: Path, info: dict[str, Any]) -> None:
    with (tmp / INFO_FILE).open("w", encoding="utf-8") as fh:
        json.dump(info, fh, ensure_ascii=False, indent=2)
        fh.write("\n")


def build_index(
    catalog: Catalog,
    out_dir: str | os.PathLike[str],
    *,
    n_trees: int = DEFAULT_N_TREES,
    model_fingerprint: str | None = None,
    progress: bool = False,
    seed: int = 42,
    n_jobs: int = 1,
    source: dict[str, Any] | None = None,
) -> Path:
    """Build the index for ``catalog`` and atomically install it at ``out_dir``; return the path.

    ``n_jobs=1`` (one build thread) is the default because Annoy's multi-threaded build is not
    reproducible even with a fixed seed, and the same catalogue should give the same file.
    ``model_fingerprint`` identifies the classifier that produced the vectors; the server
    refuses an index whose fingerprint differs from its model's (queries would be meaningless).

    ``source`` (e.g. the catalogue's path and checksum) is stored in ``index.json`` so a server
    can tell that its index is stale and rebuild it.

    Raises :class:`IndexBuildError` for an empty catalogue, bad parameters or any failure while
    writing; in every failure case an existing index at ``out_dir`` is left as it was.
    """
    if len(catalog) == 0:
        raise IndexBuildError(
            "the catalogue is empty: nothing to index (label some songs first, or pass "
            "--catalog with a non-empty catalog.jsonl)"
        )
    if n_trees < 1:
        raise IndexBuildError(f"n_trees must be >= 1, got {n_trees}")
    vectors = np.asarray(catalog.vectors, dtype=np.float32)
    if vectors.shape != (len(catalog), NUM_EMOTIONS):
        raise IndexBuildError(f"catalogue vectors have shape {vectors.shape}")
    out = Path(out_dir).absolute()
    started = time.perf_counter()
    with staging(out, "index", IndexBuildError, lambda lock: IndexBuildError(
            f"another build of {out} is running (lock {lock}); wait for it to finish")) as tmp:
        ann_path = tmp / ANN_FILE
        _write_annoy(
            vectors, ann_path, n_trees=n_trees, seed=seed, n_jobs=n_jobs, progress=progress
        )
        _write_metadata(catalog, tmp)
        info = {
            "format_version": FORMAT_VERSION,
            "dim": NUM_EMOTIONS,
            "metric": METRIC,
            "labels": list(LABELS),
            "n_trees": n_trees,
            "seed": seed,
            "count": len(catalog),
            "model_fingerprint": model_fingerprint,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {
                ANN_FILE: {"size": ann_path.stat().st_size, "sha256": sha256(ann_path)},
                VECTORS_FILE: {"size": (tmp / VECTORS_FILE).stat().st_size},
                META_FILE: {"size": (tmp / META_FILE).stat().st_size},
            },
            "build_seconds": round(time.perf_counter() - started, 3),
            "source": dict(source or {}),
        }
        _write_info(tmp, info)  # last: a dir without index.json is never a valid index
        publish(tmp, out, (ANN_FILE, VECTORS_FILE, META_FILE, INFO_FILE))
    return out


# ---- load / search --------------------------------------------------------------------------
def _read_info(path: Path) -> dict[str, Any]:
    info_path = path / INFO_FILE
    if not path.is_dir():
        raise IndexNotFoundError(f"no index at {path}; build one with `moodtune index`")
    if not info_path.is_file():
        raise IndexNotFoundError(
            f"{info_path} is missing (incomplete or foreign directory); {_REBUILD}"
        )
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"{info_path} is unreadable ({exc}); {_REBUILD}") from exc
    if not isinstance(info, dict):
        raise IndexCorruptError(f"{info_path} is not a JSON object; {_REBUILD}")
    missing = {"format_version", "dim", "metric", "count", "files", "labels"} - info.keys()
    if missing:
        raise IndexCorruptError(f"{info_path} lacks {sorted(missing)}; {_REBUILD}")
    if info["format_version"] != FORMAT_VERSION:
        raise IndexCorruptError(
            f"{path} has index format {info['format_version']}, this version reads "
            f"{FORMAT_VERSION}; {_REBUILD}"
        )
    if info["dim"] != NUM_EMOTIONS:
        raise IndexDimensionError(
            f"{path} holds {info['dim']}-d vectors, the classifier gives {NUM_EMOTIONS}; {_REBUILD}"
        )
    if list(info["labels"]) != list(LABELS):
        raise IndexDimensionError(
            f"{path} was built with emotion order {info['labels']}, current order is "
            f"{list(LABELS)}; {_REBUILD}"
        )
    if info["metric"] != METRIC:
        raise IndexCorruptError(f"{path} uses metric {info['metric']!r}, expected {METRIC!r}")
    return info


class SongIndex:
    """A loaded, read-only index: approximate cosine search over songs, safe across threads.

    Use :meth:`load`; the constructor is internal.
    """

    def __init__(
        self,
        path: Path,
        info: dict[str, Any],
        ann: Any,
        vectors: np.ndarray,
        meta: dict[str, Any],
        search_k: int,
    ) -> None:
        self.path = path
        self._info = info
        self._ann = ann
        self._vectors = vectors
        self._rows = np.asarray(vectors)  # plain ndarray view of the memmap: cheaper indexing
        self._n = int(info["count"])
        self._n_trees = int(info.get("n_trees") or DEFAULT_N_TREES)
        self.search_k = search_k
        self._cols: dict[str, _StrColumn] = meta["str"]
        self._null: dict[str, np.ndarray] = meta["null"]
        self._year: np.ndarray = meta["year"]
        self._popularity: np.ndarray = meta["popularity"]
        self._facets: dict[str, np.ndarray] = meta["facets"]
        self._ids = self._cols["song_id"]
        self._id_map: dict[str, int] | None = None
        self._id_lock = threading.Lock()
        self._derived: dict[str, Any] = {}  # columns derived on first use (see _cached)
        # Songs are immutable, so caching them is safe; lru_cache is thread-safe.
        self._song_cached = lru_cache(maxsize=65536)(self._make_song)

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        expected_fingerprint: str | None = None,
        search_k: int = DEFAULT_SEARCH_K,
        verify_checksum: bool = False,
    ) -> SongIndex:
        """Open an index directory; every inconsistency raises an :class:`IndexLoadError`.

        ``expected_fingerprint`` is the serving classifier's fingerprint: an index built from
        another model's vectors is refused. ``verify_checksum`` re-hashes ``songs.ann`` (about a
        second per 100 MB); the cheap size check always runs and catches truncation.
        """
        from annoy import AnnoyIndex

        p = Path(path)
        info = _read_info(p)
        fp = info.get("model_fingerprint")
        if expected_fingerprint is not None and fp != expected_fingerprint:
            raise IndexFingerprintError(
                f"{p} was built with classifier {fp or 'unknown'}, the loaded classifier is "
                f"{expected_fingerprint}; song vectors must come from the serving model — "
                f"relabel the catalogue with it (`moodtune label`) and {_REBUILD}"
            )
        count = info["count"]
        if not isinstance(count, int) or count < 1:
            raise IndexCorruptError(f"{p}: invalid count {count!r} in {INFO_FILE}; {_REBUILD}")

        ann_path = p / ANN_FILE
        if not ann_path.is_file():
            raise IndexNotFoundError(f"{ann_path} is missing; {_REBUILD}")
        expected = (info.get("files") or {}).get(ANN_FILE) or {}
        size = ann_path.stat().st_size
        if "size" in expected and size != expected["size"]:
            raise IndexCorruptError(
                f"{ann_path} is {size} bytes, {INFO_FILE} says {expected['size']} "
                f"(truncated or replaced); {_REBUILD}"
            )
        if verify_checksum and expected.get("sha256") and sha256(ann_path) != expected["sha256"]:
            raise IndexCorruptError(f"{ann_path} checksum mismatch; {_REBUILD}")

        ann = AnnoyIndex(NUM_EMOTIONS, METRIC)
        try:
            ann.load(str(ann_path), prefault=False)
        except OSError as exc:
            raise IndexCorruptError(f"Annoy cannot open {ann_path} ({exc}); {_REBUILD}") from exc
        try:
            if ann.get_n_items() != count:
                raise IndexCorruptError(
                    f"{ann_path} has {ann.get_n_items()} songs, {INFO_FILE} says {count}; "
                    f"{_REBUILD}"
                )
            vectors = cls._load_vectors(p, count)
            meta = cls._load_meta(p, count)
        except BaseException:
            ann.unload()
            raise
        return cls(p, info, ann, vectors, meta, search_k)

    @staticmethod
    def _load_vectors(p: Path, count: int) -> np.ndarray:
        vp = p / VECTORS_FILE
        if not vp.is_file():
            raise IndexNotFoundError(f"{vp} is missing; {_REBUILD}")
        try:
            vectors = np.load(vp, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"{vp} is unreadable ({exc}); {_REBUILD}") from exc
        if vectors.dtype != np.float32 or vectors.shape != (count, NUM_EMOTIONS):
            raise IndexCorruptError(
                f"{vp} holds {vectors.dtype} {vectors.shape}, expected float32 "
                f"({count}, {NUM_EMOTIONS}); {_REBUILD}"
            )
        return vectors

    @staticmethod
    def _load_meta(p: Path, count: int) -> dict[str, Any]:
        mp = p / META_FILE
        if not mp.is_file():
            raise IndexNotFoundError(f"{mp} is missing; {_REBUILD}")
        try:
            with np.load(mp, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError …
            raise IndexCorruptError(f"{mp} is unreadable ({exc}); {_REBUILD}") from exc
        try:
            cols = {
                c: _StrColumn(arrays[f"{c}.blob"], arrays[f"{c}.off"]) for c in _STR_COLUMNS
            }
            null = {c: arrays[f"{c}.null"] for c in (*_NULLABLE, "year")}
            year, popularity = arrays["year"], arrays["popularity"]
            facets = {n: arrays[n] for n in _FLOAT_FACETS}
            facets |= {n: arrays[f"{n}.mask"] for n in _MASK_FACETS}
        except KeyError as exc:
            raise IndexCorruptError(f"{mp} lacks column {exc}; {_REBUILD}") from exc
        lengths = {len(c) for c in cols.values()} | {len(a) for a in null.values()}
        lengths |= {len(year), len(popularity)} | {len(a) for a in facets.values()}
        if lengths != {count}:
            raise IndexCorruptError(
                f"{mp} has {sorted(lengths)} rows, {INFO_FILE} says {count}; {_REBUILD}"
            )
        return {"str": cols, "null": null, "year": year, "popularity": popularity,
                "facets": facets}

    def close(self) -> None:
        """Unmap the Annoy file. Only when no other thread can still be searching this index."""
        self._ann.unload()

    def __enter__(self) -> SongIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __contains__(self, song_id: object) -> bool:
        return isinstance(song_id, str) and song_id in self._ids_to_rows()

    def __repr__(self) -> str:
        return f"SongIndex({str(self.path)!r}, count={self._n}, n_trees={self._n_trees})"

    @property
    def info(self) -> dict[str, Any]:
        """A copy of ``index.json``."""
        return json.loads(json.dumps(self._info))

    @property
    def fingerprint(self) -> str | None:
        """Fingerprint of the classifier whose vectors were indexed (None if not recorded)."""
        return self._info.get("model_fingerprint")

    @property
    def n_trees(self) -> int:
        return self._n_trees

    @property
    def vectors(self) -> np.ndarray:
        """``(n, 6)`` float32 song vectors, row i = item i (read-only memory map)."""
        return self._vectors

    def song_id_at(self, row: int) -> str:
        return self._ids[row]

    def facet_array(self, name: str) -> np.ndarray:
        """A whole profile column, row i = item i, for filtering many songs at once:
        ``energy``/``dance`` (float32, NaN = unknown), ``situations``/``themes`` (uint32
        bitmasks over ``indexing.facets``; see :func:`facet_mask`)."""
        return self._facets[name]

    def column(self, name: str) -> list[str]:
        """A whole string column (e.g. ``genre``, ``artist``) as a list; empty = unknown."""
        return self._cols[name].all()

    def _cached(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per index (thread-safe): whole-column values that filters reuse."""
        if key not in self._derived:
            with self._id_lock:
                if key not in self._derived:
                    self._derived[key] = build()
        return self._derived[key]

    def _codes(self, name: str) -> tuple[np.ndarray, dict[str, int]]:
        """A string column as integer codes (cached): genre/artist filters in one numpy pass."""

        def build() -> tuple[np.ndarray, dict[str, int]]:
            values = self._cols[name].all()
            vocab: dict[str, int] = {}
            codes = np.fromiter((vocab.setdefault(v, len(vocab)) for v in values),
                                dtype=np.int32, count=len(values))
            return codes, vocab

        return self._cached(name, build)

    def match_rows(self, flt: SongFilter) -> np.ndarray:
        """Boolean mask of the songs that satisfy every constraint of ``flt``.

        One vectorised pass per constraint (about 1 ms per constraint at 700k songs), so a
        request like "운동할 때 듣는 힙합" never scans Python objects.
        """
        keep = np.ones(self._n, dtype=bool)
        if flt.genres:
            codes, vocab = self._codes("genre")
            keep &= np.isin(codes, [vocab[g] for g in flt.genres if g in vocab])
        if flt.artists:
            codes, vocab = self._codes("artist")
            keep &= np.isin(codes, [vocab[a] for a in flt.artists if a in vocab])
        for name, vocab_ in _MASK_FACETS.items():
            wanted = getattr(flt, name)
            if wanted:
                bits = facet_mask(wanted, vocab_)
                keep &= (self._facets[name] & np.uint32(bits)) != 0
        if flt.energy_min is not None or flt.energy_max is not None:
            e = self._facets["energy"]
            lo = -np.inf if flt.energy_min is None else flt.energy_min
            hi = np.inf if flt.energy_max is None else flt.energy_max
            keep &= (e >= lo) & (e <= hi)  # NaN (unknown) fails both: not a match
        for name, refused in (("artist", flt.exclude_artists), ("genre", flt.exclude_genres)):
            if refused:
                codes, vocab = self._codes(name)
                keep &= ~np.isin(codes, [vocab[a] for a in refused if a in vocab])
        if flt.seasons:
            keep &= (self._season_bits() & np.uint8(facet_mask(flt.seasons, SEASONS))) != 0
        return keep

    def _season_bits(self) -> np.ndarray:
        """Each song's title seasons as a bitmask over ``SEASONS`` (computed once, cached)."""
        return self._cached("_seasons", lambda: np.fromiter(
            (facet_mask(seasons_in_title(t), SEASONS) for t in self.column("title")),
            dtype=np.uint8, count=self._n))

    def search_filtered(self, vec: Any, k: int, flt: SongFilter,
                        exclude: Collection[str] = ()) -> list[tuple[Song, float]]:
        """The ``k`` songs closest in mood among those matching ``flt`` (exact cosine).

        Exact rather than Annoy: a filter can leave a handful of songs anywhere in the mood
        space, where Annoy's nearest candidates might contain none of them. Over the matching
        rows only, a normalised matmul is cheap (a few ms for 100k matches).
        """
        rows = np.flatnonzero(self.match_rows(flt))
        if not len(rows):
            return []
        k = _check_k(k)
        q = _unit_query(vec).astype(np.float32)
        v = self._rows[rows]
        sims = (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)) @ q
        order = np.argsort(-sims, kind="stable")
        if exclude:
            # Skip excluded songs while walking the ranking, stopping at k: the same songs in
            # the same order as dropping them first (the sort is stable), without decoding the
            # id of every matching row (tens of thousands for a genre filter).
            excl = _as_set(exclude)
            kept = (i for i in order if self._ids[int(rows[i])] not in excl)
            order = np.fromiter(itertools.islice(kept, k), dtype=np.int64)
        top = order[:k]
        return [(self.song_at(int(rows[i])), float(sims[i])) for i in top]

    def _ids_to_rows(self) -> dict[str, int]:
        # Built on first use (~0.3 s at 700k songs) so that plain searches never pay for it.
        if self._id_map is None:
            with self._id_lock:
                if self._id_map is None:
                    self._id_map = {sid: i for i, sid in enumerate(self._ids.all())}
        return self._id_map

    def row_of(self, song_id: str) -> int:
        try:
            return self._ids_to_rows()[song_id]
        except KeyError:
            raise UnknownSongError(f"song {song_id!r} is not in the index {self.path}") from None

    def _make_song(self, row: int) -> Song:
        c, null, f = self._cols, self._null, self._facets
        extra = c["extra"][row]
        profile = json.loads(c["profile"][row] or "{}")
        energy, dance = float(f["energy"][row]), float(f["dance"][row])
        return Song(
            song_id=c["song_id"][row],
            title=c["title"][row],
            artist=c["artist"][row],
            vector=tuple(self._rows[row].tolist()),
            album=None if null["album"][row] else c["album"][row],
            genre=None if null["genre"][row] else c["genre"][row],
            year=None if null["year"][row] else int(self._year[row]),
            melon_id=None if null["melon_id"][row] else c["melon_id"][row],
            popularity=float(self._popularity[row]),
            source=c["source"][row],
            extra=json.loads(extra) if extra else {},
            energy=None if np.isnan(energy) else round(energy, 4),
            tempo=None if null["tempo"][row] else c["tempo"][row],
            dance=None if np.isnan(dance) else round(dance, 4),
            situations=tuple(profile.get("situations")
                             or _unmask(int(f["situations"][row]), SITUATIONS)),
            themes=tuple(profile.get("themes") or _unmask(int(f["themes"][row]), THEMES)),
            lang=None if null["lang"][row] else c["lang"][row],
            provenance=profile.get("provenance") or {},
            moods={k: tuple(v) for k, v in (profile.get("moods") or {}).items()},
        )

    def song_at(self, row: int) -> Song:
        """The song stored as Annoy item ``row`` (vector rounded to float32)."""
        if not 0 <= row < self._n:
            raise IndexError(f"row {row} out of range for {self._n} songs")
        return self._song_cached(int(row))

    def song(self, song_id: str) -> Song:
        """Look a song up by id; raises :class:`UnknownSongError` (a KeyError) if absent."""
        return self.song_at(self.row_of(song_id))

    def get(self, song_id: str) -> Song | None:
        i = self._ids_to_rows().get(song_id)
        return None if i is None else self.song_at(i)

    # -- search -------------------------------------------------------------------------------
    def _effective_search_k(self, n: int, search_k: int | None) -> int:
        """Scale the node budget with the candidate count.

        ``search_k`` is tuned for ~10 results; asking for 200 candidates with the same budget
        would lose recall, so never inspect fewer than Annoy's own default of ``n * n_trees``.
        ``-1`` leaves it to Annoy.
        """
        sk = self.search_k if search_k is None else search_k
        return -1 if sk < 0 else max(sk, n * self._n_trees)

    def search_rows(
        self,
        vec: Any,
        k: int,
        exclude: Collection[str] = (),
        search_k: int | None = None,
    ) -> list[tuple[int, float]]:
        """Like :meth:`search` but returns ``(row, cosine)``: no ``Song`` objects built."""
        q = _unit_query(vec).tolist()
        k = _check_k(k)
        if k == 0:
            return []
        excl = _as_set(exclude)
        n = min(self._n, k + len(excl))
        while True:
            rows, dists = self._ann.get_nns_by_vector(
                q, n, search_k=self._effective_search_k(n, search_k), include_distances=True
            )
            out: list[tuple[int, float]] = []
            for row, d in zip(rows, dists, strict=True):
                if excl and self._ids[row] in excl:
                    continue
                out.append((row, cosine_from_angular(d)))
                if len(out) == k:
                    break
            if len(out) >= k or n >= self._n:
                break
            n = min(self._n, 2 * n)  # Annoy found too few after exclusions: widen and retry
        out.sort(key=lambda t: -t[1])
        return out

    def search(
        self,
        vec: Any,
        k: int,
        exclude: Collection[str] = (),
        search_k: int | None = None,
    ) -> list[tuple[Song, float]]:
        """The ``k`` songs closest in mood to ``vec``, as ``(song, cosine)`` best first.

        ``vec`` is a 6-d emotion vector (any scale; it is normalised). Songs whose id is in
        ``exclude`` (e.g. recently played) are skipped and more candidates are fetched so that
        ``k`` results still come back whenever the catalogue has them. Raises ``ValueError`` for a
        zero, NaN or wrong-shape vector. Thread-safe.
        """
        return [(self.song_at(r), s) for r, s in self.search_rows(vec, k, exclude, search_k)]

    def neighbours(
        self, song_id: str, k: int, exclude: Collection[str] = (), search_k: int | None = None
    ) -> list[tuple[Song, float]]:
        """"More like this": the ``k`` songs closest to ``song_id``, never the song itself."""
        row = self.row_of(song_id)
        excl = {song_id, *exclude}
        return self.search(self._rows[row], k, exclude=excl, search_k=search_k)


def _unmask(bits: int, vocabulary: Sequence[str]) -> tuple[str, ...]:
    return tuple(v for i, v in enumerate(vocabulary) if bits >> i & 1)


# ---- exact reference search -----------------------------------------------------------------
class ExactSearch:
    """Brute-force cosine search (normalised matmul + argpartition), same API as ``search``.

    The reference the benchmark and tests measure Annoy's recall against, and a fallback for tiny
    catalogues. O(n) per query: ~15 ms at 700k songs versus well under 1 ms for Annoy.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        song_at: Callable[[int], Song],
        song_id_at: Callable[[int], str],
    ) -> None:
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] != NUM_EMOTIONS:
            raise ValueError(f"vectors must have shape (n, {NUM_EMOTIONS}), got {v.shape}")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        if not np.all(norms > 0):
            raise ValueError("vectors must be non-zero")
        self._unit = np.ascontiguousarray(v / norms, dtype=np.float32)
        self._song_at = song_at
        self._song_id_at = song_id_at

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> ExactSearch:
        songs = catalog.songs
        return cls(catalog.vectors, songs.__getitem__, lambda i: songs[i].song_id)

    @classmethod
    def from_index(cls, index: SongIndex) -> ExactSearch:
        return cls(np.asarray(index.vectors), index.song_at, index.song_id_at)

    def __len__(self) -> int:
        return len(self._unit)

    def scores(self, vec: Any) -> np.ndarray:
        """Cosine of ``vec`` with every song, ``(n,)`` float32."""
        return self._unit @ _unit_query(vec).astype(np.float32)

    def search_rows(
        self, vec: Any, k: int, exclude: Collection[str] = (), search_k: int | None = None
    ) -> list[tuple[int, float]]:
        """``(row, cosine)`` pairs, best first. ``search_k`` is accepted and ignored (exact)."""
        del search_k
        scores = self.scores(vec)
        k = _check_k(k)
        n = len(scores)
        if k == 0 or n == 0:
            return []
        excl = _as_set(exclude)
        m = min(n, k + len(excl))
        while True:
            top = np.argpartition(-scores, m - 1)[:m] if m < n else np.arange(n)
            top = top[np.argsort(-scores[top], kind="stable")]
            out = [
                (int(r), float(scores[r]))
                for r in top
                if not (excl and self._song_id_at(int(r)) in excl)
            ][:k]
            if len(out) >= k or m >= n:
                return out
            m = min(n, 2 * m)

    def search(
        self, vec: Any, k: int, exclude: Collection[str] = (), search_k: int | None = None
    ) -> list[tuple[Song, float]]:
        return [(self._song_at(r), s) for r, s in self.search_rows(vec, k, exclude, search_k)]


def cosine_from_angular(d: float) -> float:
    """Annoy angular distance → cosine similarity (``d = sqrt(2 - 2 cos)``)."""
    return min(1.0, max(-1.0, 1.0 - d * d / 2.0))

