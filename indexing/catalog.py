"""The song catalogue: what the recommender can play, with one 6-d emotion vector per song.

The interchange format is JSON Lines (``catalog.jsonl``): one song per line, human-diffable, easy
to append to from the labeller and safe to ship without lyrics. The Annoy index directory keeps
its own columnar copy of this metadata (see ``indexing.index``) because that has to load fast at
700k songs; this module is the slow-but-simple source of truth both are built from.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from inference.emotions import LABELS, NUM_EMOTIONS

__all__ = [
    "Catalog",
    "CatalogError",
    "Song",
    "default_catalog_path",
    "load_default",
    "melon_url",
    "normalise",
    "youtube_search_url",
]


class CatalogError(ValueError):
    """A catalogue file is missing, malformed or has invalid vectors."""


@dataclass(frozen=True, slots=True)
class Song:
    """One recommendable track. ``vector`` is in ``inference.emotions.LABELS`` order."""

    song_id: str
    title: str
    artist: str
    vector: tuple[float, ...]
    album: str | None = None
    genre: str | None = None
    year: int | None = None
    melon_id: str | None = None
    popularity: float = 0.0
    source: str = "lyrics"  # "lyrics" | "description" | "synthetic" | ...
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.song_id or not self.title:
            raise CatalogError(f"song needs an id and a title: {self.song_id!r} {self.title!r}")
        if len(self.vector) != NUM_EMOTIONS:
            raise CatalogError(
                f"song {self.song_id}: vector has {len(self.vector)} values, expected "
                f"{NUM_EMOTIONS} ({', '.join(LABELS)})"
            )
        if not all(math.isfinite(x) for x in self.vector) or not any(x != 0 for x in self.vector):
            raise CatalogError(f"song {self.song_id}: vector must be finite and non-zero")

    @property
    def link(self) -> str:
        """Where a listener can play it: the Melon page when known, else a YouTube search."""
        if self.melon_id:
            return melon_url(self.melon_id)
        return youtube_search_url(self.title, self.artist)

    def to_json(self) -> dict:
        d = asdict(self)
        d["vector"] = [round(float(x), 6) for x in self.vector]
        if not d["extra"]:
            d.pop("extra")
        return d

    @classmethod
    def from_json(cls, d: dict) -> Song:
        try:
            year = d.get("year")
            return cls(
                song_id=str(d["song_id"]),
                title=str(d["title"]),
                artist=str(d.get("artist") or ""),
                vector=tuple(float(x) for x in d["vector"]),
                album=d.get("album"),
                genre=d.get("genre"),
                year=int(year) if year not in (None, "") else None,
                melon_id=str(d["melon_id"]) if d.get("melon_id") else None,
                popularity=float(d.get("popularity") or 0.0),
                source=str(d.get("source") or "lyrics"),
                extra=dict(d.get("extra") or {}),
            )
        except CatalogError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"bad catalogue record {d!r:.200}: {exc}") from exc


_FEAT = re.compile(r"[(\[]\s*(?:feat|ft|with)\b[^)\]]*[)\]]", re.IGNORECASE)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Comparison key for titles/artists: width, case, punctuation, spacing and "(feat. X)" ignored.

    Crawled metadata spells one track many ways ("Love Poem", "love poem", "Love Poem (Feat.
    X)", full-width letters); those are the same song to a listener.
    """
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _FEAT.sub(" ", t)
    return _NON_WORD.sub("", t)


def melon_url(melon_id: str) -> str:
    return f"https://www.melon.com/song/detail.htm?songId={melon_id}"


def youtube_search_url(title: str, artist: str) -> str:
    from urllib.parse import quote_plus

    return "https://www.youtube.com/results?search_query=" + quote_plus(f"{artist} {title}".strip())


class Catalog:
    """An ordered, id-addressable list of songs with their vectors as one (n, 6) float32 array."""

    def __init__(self, songs: Iterable[Song]) -> None:
        self.songs: list[Song] = list(songs)
        self._by_id: dict[str, int] = {}
        for i, s in enumerate(self.songs):
            if s.song_id in self._by_id:
                raise CatalogError(f"duplicate song_id {s.song_id!r}")
            self._by_id[s.song_id] = i
        self.vectors: np.ndarray = (
            np.asarray([s.vector for s in self.songs], dtype=np.float32).reshape(-1, NUM_EMOTIONS)
        )

    def __len__(self) -> int:
        return len(self.songs)

    def __iter__(self) -> Iterator[Song]:
        return iter(self.songs)

    def __contains__(self, song_id: object) -> bool:
        return song_id in self._by_id

    def get(self, song_id: str) -> Song | None:
        i = self._by_id.get(song_id)
        return None if i is None else self.songs[i]

    def position(self, song_id: str) -> int:
        return self._by_id[song_id]

    def dominant_counts(self) -> dict[str, int]:
        """How many songs lead with each emotion — the catalogue's mood coverage."""
        counts = dict.fromkeys(LABELS, 0)
        if len(self):
            for i in np.argmax(self.vectors, axis=1):
                counts[LABELS[int(i)]] += 1
        return counts

    # ---- I/O ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Catalog:
        p = Path(path)
        if not p.exists():
            raise CatalogError(f"catalogue not found: {p}")
        songs = []
        with p.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CatalogError(f"{p}:{lineno}: not JSON ({exc.msg})") from exc
                if not isinstance(rec, dict):
                    raise CatalogError(
                        f"{p}:{lineno}: expected a JSON object, got {type(rec).__name__}"
                    )
                try:
                    songs.append(Song.from_json(rec))
                except CatalogError as exc:
                    raise CatalogError(f"{p}:{lineno}: {exc}") from exc
        return cls(songs)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temp file + rename) so a crash never leaves half a catalogue."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=p.name, suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for s in self.songs:
                    fh.write(json.dumps(s.to_json(), ensure_ascii=False) + "\n")
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def default_catalog_path() -> Path:
    """The starter catalogue shipped inside the package."""
    return Path(str(resources.files("indexing") / "data" / "catalog.jsonl"))


def load_default() -> Catalog:
    return Catalog.load(default_catalog_path())
