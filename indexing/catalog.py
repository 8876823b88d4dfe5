"""The song catalogue: what the recommender can play — a profile per song, not just 6 numbers.

The interchange format is JSON Lines (``catalog.jsonl``): one song per line, human-diffable, easy
to append to from the labeller and safe to ship without lyrics. The Annoy index directory keeps
its own columnar copy of this metadata (see ``indexing.index``) because that has to load fast at
700k songs; this module is the slow-but-simple source of truth both are built from.

Format 2 (``"v": 2``) is a *song profile* in the spirit of Pandora's Music Genome and Melon's
tags: the served 6-d mood vector plus energy, danceability, felt tempo, situations, themes,
lyric language, genre and year, each field with its ``provenance`` (which source said so —
lyrics, editorial, metadata, feedback — and how sure it is), and the per-source mood vectors
the served one was fused from (``moods``). Format 1 lines (just the vector and metadata) are
still read: their facets are simply unknown.
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
    "LINK_KINDS",
    "Catalog",
    "CatalogError",
    "Song",
    "default_catalog_path",
    "load_default",
    "melon_search_url",
    "melon_url",
    "normalise",
    "search_query",
    "youtube_search_url",
]

#: How a track's link is chosen (``LINK_KIND``): the Melon page when the id is known else a
#: YouTube search ("auto"), always Melon (its page or its search), or always YouTube search.
LINK_KINDS: tuple[str, ...] = ("auto", "melon", "youtube")


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
    source: str = "lyrics"  # where ``vector`` came from: "lyrics" | "description" | "fused" | …
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    # ---- format 2: the profile (None / () = unknown) -------------------------------------
    energy: float | None = None  # 0 still … 1 loud and driving
    tempo: str | None = None  # indexing.facets.TEMPOS
    dance: float | None = None  # danceability 0 … 1
    situations: tuple[str, ...] = ()  # indexing.facets.SITUATIONS
    themes: tuple[str, ...] = ()  # indexing.facets.THEMES
    lang: str | None = None  # indexing.facets.LANGS
    #: field name → {"source": "editorial" | "lyrics" | "metadata" | "feedback" | "a+b",
    #: "confidence": 0..1}
    provenance: dict = field(default_factory=dict, compare=False, hash=False)
    #: source name → that source's own 6-d mood vector, before fusion
    moods: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.song_id or not self.title:
            raise CatalogError(f"song needs an id and a title: {self.song_id!r} {self.title!r}")
        for name in ("energy", "dance"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise CatalogError(f"song {self.song_id}: {name} must be in [0, 1], got {v!r}")
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
        return self.link_for("auto")

    def link_for(self, kind: str = "auto") -> str:
        """The link of one ``LINK_KINDS`` kind, searching by a clean query when no id is known."""
        if kind not in LINK_KINDS:
            raise ValueError(f"link kind must be one of {LINK_KINDS}, got {kind!r}")
        if kind == "youtube":
            return youtube_search_url(self.title, self.artist)
        if self.melon_id:
            return melon_url(self.melon_id)
        if kind == "melon":
            return melon_search_url(self.title, self.artist)
        return youtube_search_url(self.title, self.artist)

    @property
    def has_profile(self) -> bool:
        return bool(self.provenance or self.moods or self.themes or self.situations
                    or self.energy is not None or self.lang)

    def to_json(self) -> dict:
        d = asdict(self)
        d["vector"] = [round(float(x), 6) for x in self.vector]
        if not d["extra"]:
            d.pop("extra")
        if not self.has_profile:  # a format-1 song stays a format-1 line
            for k in ("energy", "tempo", "dance", "situations", "themes", "lang", "provenance",
                      "moods"):
                d.pop(k)
            return d
        d = {"v": 2, **d}
        d["situations"], d["themes"] = list(self.situations), list(self.themes)
        d["moods"] = {k: [round(float(x), 6) for x in v] for k, v in self.moods.items()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> Song:
        try:
            year = d.get("year")
            energy, dance = d.get("energy"), d.get("dance")
            moods = d.get("moods") or {}
            if not isinstance(moods, dict) or not isinstance(d.get("provenance") or {}, dict):
                raise TypeError("moods and provenance must be objects")
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
                energy=float(energy) if energy is not None else None,
                tempo=str(d["tempo"]) if d.get("tempo") else None,
                dance=float(dance) if dance is not None else None,
                situations=tuple(str(x) for x in d.get("situations") or ()),
                themes=tuple(str(x) for x in d.get("themes") or ()),
                lang=str(d["lang"]) if d.get("lang") else None,
                provenance=dict(d.get("provenance") or {}),
                moods={str(k): tuple(float(x) for x in v) for k, v in moods.items()},
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


# A bracketed part after some text ("퀸카 (Queencard)"), never a leading one ("(여자)아이들").
_BRACKETS = re.compile(r"(?<=\S)\s*[(\[{（【][^)\]}）】]*[)\]}）】]")
_FEAT_TAIL = re.compile(r"\s+(?:feat\.?|ft\.?|with|prod\.?)\s.*$", re.IGNORECASE)


def search_query(title: str, artist: str) -> str:
    """A query a music search engine answers well: "아이유 밤편지", not the catalogue's full
    "Love wins all (Feat. …) (Prod. …)" with every parenthetical.

    Parentheticals and feat./prod. tails go from the title; the artist keeps one name (Melon
    writes "IVE (아이브)": the Korean name in brackets is dropped, the main one stays). A title
    that is nothing but brackets keeps its inner text.
    """
    t = unicodedata.normalize("NFKC", title).strip()
    clean = _FEAT_TAIL.sub("", _BRACKETS.sub("", t)).strip()
    if not clean:
        clean = re.sub(r"[()\[\]{}]", " ", t).strip()
    a = unicodedata.normalize("NFKC", artist).strip()
    a_clean = _FEAT_TAIL.sub("", _BRACKETS.sub("", a)).strip() or a
    a_clean = a_clean.split(",")[0].split(" & ")[0].strip()
    return " ".join(f"{a_clean} {clean}".split())[:100]


def melon_url(melon_id: str) -> str:
    return f"https://www.melon.com/song/detail.htm?songId={melon_id}"


def melon_search_url(title: str, artist: str) -> str:
    from urllib.parse import quote_plus

    return ("https://www.melon.com/search/total/index.htm?q="
            + quote_plus(search_query(title, artist)))


def youtube_search_url(title: str, artist: str) -> str:
    from urllib.parse import quote_plus

    return ("https://www.youtube.com/results?search_query="
            + quote_plus(search_query(title, artist)))


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
