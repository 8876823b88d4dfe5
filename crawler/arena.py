"""Song seeds for the crawler: Kakao Arena ``song_meta.json`` (streamed) or a plain CSV.

The Arena file is ~160 MB in one JSON array; ``json.load`` would hold the whole decoded list
(several GB of Python objects) in memory, so :func:`iter_json_array` decodes one element at a time
with ``json.JSONDecoder.raw_decode`` over text chunks. Songs that have no lyrics worth reading
(instrumental genres, ``(Inst.)``/``MR`` versions) are filtered *before* crawling — every one of
them would otherwise cost a polite, slow request for nothing — and every filtered song is counted
by reason so the operator can see what was dropped.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "INSTRUMENTAL_GENRE_KEYWORDS",
    "ArenaFormatError",
    "FilterStats",
    "SeedFileError",
    "SongSeed",
    "instrumental_genre",
    "is_instrumental_title",
    "iter_json_array",
    "load_genre_map",
    "load_seeds",
    "read_song_meta",
    "read_songs_csv",
]


class SeedFileError(ValueError):
    """The seed file (song_meta.json / songs.csv / genre map) cannot be read as expected."""


class ArenaFormatError(SeedFileError):
    """``song_meta.json`` is not a JSON array of objects (truncated or not the Arena file)."""


@dataclass(frozen=True, slots=True)
class SongSeed:
    """One song to look up on Melon.

    ``seed_id`` is stable across runs (the Arena song id, or a hash of title+artist for CSV rows)
    because the crawl database is keyed on it: resuming must find the same rows again.
    """

    seed_id: str
    title: str
    artists: tuple[str, ...]
    album: str | None = None
    album_id: int | None = None
    genres: tuple[str, ...] = ()
    year: int | None = None

    @property
    def artist(self) -> str:
        """All artists as one display string (the crawl DB's ``artist`` column)."""
        return ", ".join(self.artists)


@dataclass
class FilterStats:
    """What the reader kept and what it dropped, by reason (e.g. ``genre:클래식``, ``inst_title``)."""

    read: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def summary(self) -> str:
        parts = [f"read {self.read}", f"kept {self.kept}"]
        parts += [f"{reason} {n}" for reason, n in self.dropped.most_common()]
        return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# streaming JSON array
# --------------------------------------------------------------------------------------------

_WS = " \t\r\n"
_NUM_CONT = frozenset("0123456789.eE+-")


def iter_json_array(
    fp: TextIO, *, chunk_chars: int = 1 << 16, max_item_chars: int = 1 << 22
) -> Iterator[Any]:
    """Yield the elements of a top-level JSON array read from ``fp`` one at a time.

    Memory stays at roughly one chunk plus one element. ``raw_decode`` fails on an element cut
    by a chunk boundary, in which case more text is read and the decode retried; an element that
    still fails after ``max_item_chars`` (or at end of file) is malformed, not merely split.
    """
    decoder = json.JSONDecoder()
    buf = ""
    pos = 0
    eof = False

    def fill() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        chunk = fp.read(chunk_chars)
        if not chunk:
            eof = True
            return False
        buf = buf[pos:] + chunk
        pos = 0
        return True

    def skip_ws() -> bool:
        """Advance past whitespace; False when the input ended."""
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            if pos < len(buf):
                return True
            if not fill():
                return False

    if not skip_ws():
        raise ArenaFormatError("empty file: expected a JSON array like song_meta.json")
    if buf[pos] == "\ufeff":  # UTF-8 BOM read as text
        pos += 1
        if not skip_ws():
            raise ArenaFormatError("empty file: expected a JSON array")
    if buf[pos] != "[":
        raise ArenaFormatError(
            f"expected a JSON array ('['), found {buf[pos]!r}: is this Kakao Arena song_meta.json?")
    pos += 1
    first = True
    while True:
        if not skip_ws():
            raise ArenaFormatError("file ended inside the array (truncated download?)")
        if buf[pos] == "]":
            return
        if not first:
            if buf[pos] != ",":
                raise ArenaFormatError(f"expected ',' or ']' between elements, found {buf[pos]!r}")
            pos += 1
            if not skip_ws():
                raise ArenaFormatError("file ended after ',' (truncated download?)")
        first = False
        while True:
            try:
                item, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if len(buf) - pos > max_item_chars or not fill():
                    raise ArenaFormatError(f"malformed JSON element: {exc.msg}") from exc
                continue
            # A number cut by the chunk boundary ("-0." + "5e3") decodes as a shorter number;
            # read on until it is followed by a delimiter.
            cut_number = (isinstance(item, int | float) and not isinstance(item, bool)
                          and not eof and (end == len(buf) or buf[end] in _NUM_CONT))
            if cut_number and fill():
                continue
            break
        pos = end
        yield item


# --------------------------------------------------------------------------------------------
# genres and instrumental filters
# --------------------------------------------------------------------------------------------

#: A top-level genre whose name contains one of these is (nearly always) instrumental.
INSTRUMENTAL_GENRE_KEYWORDS: tuple[str, ...] = (
    "클래식", "재즈", "뉴에이지", "일렉트로니카", "edm", "국악", "뮤직테라피",
    "classical", "classic", "jazz", "new age", "newage", "electronica",
)
#: Detailed genres under those that do carry sung lyrics (vocal jazz, electronic pop, 국악가요).
VOCAL_DETAIL_GENRES: frozenset[str] = frozenset({"보컬재즈", "일렉트로닉팝", "국악가요", "팝스타일"})


def _norm_code(code: str) -> str:
    """``GN0100`` and ``0100`` name the same genre (Arena baskets use the prefix, the map not)."""
    code = code.strip().upper()
    return code[2:] if code.startswith("GN") else code


def load_genre_map(path: str | Path) -> dict[str, str]:
    """Read ``genre_gn_all.json`` (``{"0100": "발라드", ...}``) with codes normalised (no ``GN``)."""
    try:
        with open(path, encoding="utf-8") as fp:
            data = json.load(fp)
    except (OSError, json.JSONDecodeError) as exc:
        raise SeedFileError(f"cannot read genre map {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SeedFileError(f"genre map {path} must be a JSON object code -> name")
    return {_norm_code(str(k)): html.unescape(str(v)).strip() for k, v in data.items()}


def _genre_key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).lower().replace(" ", "")


def instrumental_genre(top_genres: Iterable[str], detail_genres: Iterable[str] = ()) -> str | None:
    """Return the instrumental genre name if *all* top-level genres are instrumental, else None.

    All, not any: a song filed under 발라드 and 일렉트로니카 is still sung. A vocal detail genre
    (보컬재즈 …) rescues the song.
    """
    tops = [g for g in top_genres if g]
    if not tops:
        return None
    if any(_genre_key(d) in VOCAL_DETAIL_GENRES for d in detail_genres):
        return None
    hits = []
    for name in tops:
        key = _genre_key(name)
        if not any(kw.replace(" ", "") in key for kw in INSTRUMENTAL_GENRE_KEYWORDS):
            return None
        hits.append(name)
    return hits[0]


_INST_PATTERNS = (
    # "(Inst.)", "[Instrumental]", "(Inst. Ver.)", "(Original Inst)", "(MR)", "(MR Ver.)"
    re.compile(r"[(\[][^)\]]*(?:\b(?i:inst)\b\.?|\b(?i:instrumental)\b|\bMR\b)[^)\]]*[)\]]"),
    # "사랑 - Inst.", "사랑 - MR"
    re.compile(r"\s[-–]\s*(?:(?i:inst)\.?|(?i:instrumental)|MR)\s*$"),
    re.compile(r"\b(?i:instrumental)\b"),
    re.compile(r"^\s*(?i:inst)\.?\s*$"),
)


def is_instrumental_title(title: str) -> bool:
    """True for titles marked as an instrumental / MR version (``(Inst.)``, ``- MR`` …).

    ``MR`` is matched upper-case only so "Mr. Chu" survives; ``inst`` as a whole word only so
    "Instinct" survives.
    """
    return any(p.search(title) for p in _INST_PATTERNS)


# --------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------


def _clean(text: Any) -> str:
    return html.unescape(str(text)).strip() if text is not None else ""


def _year(issue_date: Any) -> int | None:
    s = str(issue_date or "").strip()
    if len(s) >= 4 and s[:4].isdigit():
        y = int(s[:4])
        return y if 1900 <= y <= 2100 else None
    return None


def _filter(seed: SongSeed, detail_genres: Iterable[str], stats: FilterStats) -> bool:
    if not seed.title:
        stats.drop("no_title")
        return False
    if not seed.artists:
        stats.drop("no_artist")
        return False
    if is_instrumental_title(seed.title):
        stats.drop("inst_title")
        return False
    genre = instrumental_genre(seed.genres, detail_genres)
    if genre:
        stats.drop(f"genre:{genre}")
        return False
    return True


def read_song_meta(
    path: str | Path,
    genre_map: dict[str, str] | None = None,
    stats: FilterStats | None = None,
    *,
    chunk_chars: int = 1 << 16,
) -> Iterator[SongSeed]:
    """Stream ``song_meta.json`` into filtered :class:`SongSeed` s.

    A malformed record (not an object, no id) is counted as ``bad_record`` and skipped rather than
    aborting a 700k-song read; a malformed *file* raises :class:`ArenaFormatError`.
    """
    genre_map = genre_map or {}
    stats = stats if stats is not None else FilterStats()
    try:
        fp = open(path, encoding="utf-8")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise SeedFileError(f"cannot open {path}: {exc}") from exc
    with fp:
        for rec in iter_json_array(fp, chunk_chars=chunk_chars):
            stats.read += 1
            if not isinstance(rec, dict) or rec.get("id") is None:
                stats.drop("bad_record")
                continue
            try:
                album_id = int(rec["album_id"]) if rec.get("album_id") not in (None, "") else None
            except (TypeError, ValueError):
                album_id = None
            tops = [genre_map.get(_norm_code(str(c)), str(c))
                    for c in rec.get("song_gn_gnr_basket") or []]
            details = [genre_map.get(_norm_code(str(c)), str(c))
                       for c in rec.get("song_gn_dtl_gnr_basket") or []]
            artists = tuple(a for a in (_clean(x) for x in rec.get("artist_name_basket") or []) if a)
            seed = SongSeed(
                seed_id=str(rec["id"]),
                title=_clean(rec.get("song_name")),
                artists=artists,
                album=_clean(rec.get("album_name")) or None,
                album_id=album_id,
                genres=tuple(dict.fromkeys(tops)),
                year=_year(rec.get("issue_date")),
            )
            if _filter(seed, details, stats):
                stats.kept += 1
                yield seed


def _csv_seed_id(title: str, artist: str) -> str:
    key = f"{unicodedata.normalize('NFKC', title).lower()}\x1f{unicodedata.normalize('NFKC', artist).lower()}"
    return "csv:" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def read_songs_csv(path: str | Path, stats: FilterStats | None = None) -> Iterator[SongSeed]:
    """Read a ``title,artist[,album,album_id,genre,year,id]`` CSV (header required).

    Without an ``id`` column the seed id is a hash of title+artist, so the same CSV (even
    reordered) resumes onto the same crawl rows; repeated title+artist rows are dropped.
    """
    stats = stats if stats is not None else FilterStats()
    seen: set[str] = set()
    try:
        fp = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (with below)
    except OSError as exc:
        raise SeedFileError(f"cannot open {path}: {exc}") from exc
    with fp:
        reader = csv.DictReader(fp)
        cols = {c.strip().lower(): c for c in reader.fieldnames or []}
        if "title" not in cols or "artist" not in cols:
            raise SeedFileError(
                f"{path}: CSV needs a header with 'title' and 'artist' columns, got {reader.fieldnames}")

        def get(row: dict[str, str], name: str) -> str:
            col = cols.get(name)
            return _clean(row.get(col)) if col else ""

        for row in reader:
            stats.read += 1
            title, artist = get(row, "title"), get(row, "artist")
            album_id_s = get(row, "album_id")
            year_s = get(row, "year") or get(row, "issue_date")
            genre = get(row, "genre")
            seed_id = get(row, "id") or get(row, "seed_id") or _csv_seed_id(title, artist)
            seed = SongSeed(
                seed_id=seed_id,
                title=title,
                artists=(artist,) if artist else (),
                album=get(row, "album") or None,
                album_id=int(album_id_s) if album_id_s.isdigit() else None,
                genres=(genre,) if genre else (),
                year=_year(year_s),
            )
            if seed_id in seen:
                stats.drop("duplicate")
                continue
            seen.add(seed_id)
            if _filter(seed, (), stats):
                stats.kept += 1
                yield seed


def load_seeds(
    path: str | Path,
    genres_path: str | Path | None = None,
    stats: FilterStats | None = None,
) -> Iterator[SongSeed]:
    """Pick the reader by extension: ``.json`` → Arena song_meta, ``.csv`` → plain CSV."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".json":
        genre_map = load_genre_map(genres_path) if genres_path else None
        return read_song_meta(p, genre_map, stats)
    if suffix in {".csv", ".tsv", ".txt"}:
        return read_songs_csv(p, stats)
    raise SeedFileError(f"{path}: expected song_meta.json or a .csv of title,artist")
