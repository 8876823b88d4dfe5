"""Build the served catalogue (format 2): labelled songs + editorial annotations → profiles.

Inputs, each optional except the first:

* the labeller's output (``moodtune label``): lyric and description mood vectors, lyric
  language and themes — the *lyrics*/*description* sources;
* editorial annotations (``indexing/data/editorial/*.jsonl``): mood, energy, danceability,
  tempo, situations, themes, genre, year, album for songs an annotator knows — the *editorial*
  source; annotated songs without lyrics (the "additions") enter the catalogue on editorial
  data alone;
* the public known-songs check set (``training/data/known_songs.csv``): its *fit* split sets
  the source weights (``training.profile.FusionModel.fit``); its *report* split is only ever
  scored (``benchmarks/songs.py``).

Every field of every song records where it came from (``provenance``), and a field no source
knows stays unknown — except energy/danceability/tempo/situations, which get a low-confidence
guess from mood and genre (``training.profile.derived_facets``) so requests can match them.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexing.catalog import Catalog, Song, normalise
from indexing.facets import GENRES, LANGS, SITUATIONS, TEMPOS, THEMES
from inference.emotions import LABELS, index_of
from training.label import song_id_for
from training.profile import FusionModel, derived_facets, editorial_vector, genre_of

__all__ = [
    "FEEDBACK_CAP",
    "BuildReport",
    "EditorialRecord",
    "KnownSong",
    "build_catalog",
    "default_editorial_dir",
    "default_known_songs_path",
    "feedback_moods",
    "read_editorial",
    "read_known_songs",
]

#: Learning from listeners: the feedback source's share of a song's served vector is
#: ``FEEDBACK_CAP × n / (n + FEEDBACK_HALF)`` for ``n`` weighted reactions — bounded, so a few
#: reactions nudge and many move a song, but feedback never replaces what the song *is*.
FEEDBACK_CAP = 0.35
FEEDBACK_HALF = 20.0
#: How much each reaction says about the mood it was given in (dislikes push away).
_FEEDBACK_SIGNALS = {"love": 2.0, "like": 1.0, "play": 0.3, "skip": -0.2, "dislike": -0.7}

def default_editorial_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "indexing" / "data" / "editorial"


def default_known_songs_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "known_songs.csv"


@dataclass(frozen=True, slots=True)
class EditorialRecord:
    """One annotation: what a listener who knows the recording says about it."""

    song_id: str
    title: str
    artist: str
    mood: str
    also: tuple[str, ...]
    energy: float | None
    tempo: str | None
    dance: float | None
    situations: tuple[str, ...]
    themes: tuple[str, ...]
    genre: str | None
    year: int | None
    album: str | None
    lang: str | None
    confidence: float
    file: str


def read_editorial(directory: str | Path | None = None) -> list[EditorialRecord]:
    """Every ``*.jsonl`` annotation file in ``directory``; bad records stop the build.

    A record without ``song_id`` (a song added on editorial data alone) gets the id the
    labeller would give it, so a later crawl of its lyrics lands on the same song.
    """
    d = Path(directory) if directory else default_editorial_dir()
    out: list[EditorialRecord] = []
    seen: dict[str, str] = {}
    for path in sorted(d.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path.name}:{lineno}"
                try:
                    r = json.loads(line)
                    rec = _record(r, path.name)
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{where}: bad editorial record ({exc})") from exc
                if rec.song_id in seen:
                    raise ValueError(f"{where}: {rec.title} / {rec.artist} is already annotated "
                                     f"in {seen[rec.song_id]}")
                seen[rec.song_id] = where
                out.append(rec)
    return out


def _record(r: Mapping[str, Any], file: str) -> EditorialRecord:
    title, artist = str(r["title"]).strip(), str(r["artist"]).strip()
    mood = LABELS[index_of(r["mood"])]
    also = tuple(LABELS[index_of(m)] for m in r.get("also") or () if index_of(m) != index_of(mood))
    for name, vocab in (("situations", SITUATIONS), ("themes", THEMES)):
        bad = set(r.get(name) or ()) - set(vocab)
        if bad:
            raise ValueError(f"unknown {name} {sorted(bad)}")
    if r.get("tempo") not in (None, *TEMPOS) or r.get("lang") not in (None, *LANGS):
        raise ValueError(f"tempo {r.get('tempo')!r} / lang {r.get('lang')!r} not in vocabulary")
    if r.get("genre") is not None and r["genre"] not in GENRES:
        raise ValueError(f"genre {r['genre']!r} is not a Kakao Arena genre name")
    return EditorialRecord(
        song_id=str(r.get("song_id") or song_id_for(title, artist)), title=title, artist=artist,
        mood=mood, also=also,
        energy=None if r.get("energy") is None else float(r["energy"]),
        tempo=r.get("tempo"), dance=None if r.get("dance") is None else float(r["dance"]),
        situations=tuple(r.get("situations") or ()), themes=tuple(r.get("themes") or ()),
        genre=r.get("genre"), year=None if r.get("year") in (None, "") else int(r["year"]),
        album=r.get("album") or None, lang=r.get("lang"),
        confidence=float(r.get("confidence", 0.8)), file=file)


@dataclass(frozen=True, slots=True)
class KnownSong:
    song_id: str
    title: str
    artist: str
    moods: tuple[str, ...]  # accepted by a listener, best first
    split: str  # "fit" | "report"


def read_known_songs(path: str | Path | None = None) -> list[KnownSong]:
    p = Path(path) if path else default_known_songs_path()
    out = []
    with p.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            moods = tuple(LABELS[index_of(m.strip())] for m in row["moods"].split("|") if m.strip())
            out.append(KnownSong(row["song_id"], row["title"], row["artist"], moods,
                                 row["split"].strip()))
    return out


@dataclass
class BuildReport:
    songs: int = 0
    by_sources: Counter = field(default_factory=Counter)
    by_mood: Counter = field(default_factory=Counter)
    by_genre: Counter = field(default_factory=Counter)
    fusion: dict = field(default_factory=dict)
    editorial_unmatched: list[str] = field(default_factory=list)

    def balance_problems(self) -> list[str]:
        """Issue 11's balance rule: every mood leads ≥ 60 songs (중립 ≥ 40), none > 35 %."""
        out = []
        for m in LABELS:
            need = 40 if m == "중립" else 60
            if self.by_mood[m] < need:
                out.append(f"{m} leads {self.by_mood[m]} songs (< {need})")
            if self.songs and self.by_mood[m] / self.songs > 0.35:
                out.append(f"{m} leads {self.by_mood[m] / self.songs:.0%} of songs (> 35%)")
        return out


def feedback_moods(db_path: str | Path) -> dict[str, tuple[np.ndarray, float]]:
    """Per song, the moods of the answers people reacted to, weighted by what they said:
    ``{song_id: (mood vector, weighted reaction count)}``, from the bot's database (read-only).

    A like given to a song shown for a joyful message pulls it toward joy; a dislike given in a
    sad answer pushes it away from sadness. Songs whose net pull is not positive are left out.
    """
    import sqlite3

    from bot.store import read_feedback_moods

    uri = f"file:{Path(db_path).resolve()}?mode=ro"
    acc: dict[str, np.ndarray] = {}
    count: dict[str, float] = {}
    con = sqlite3.connect(uri, uri=True)
    try:
        for song_id, signal, emotion in read_feedback_moods(con):
            w = _FEEDBACK_SIGNALS.get(signal, 0.0)
            if w == 0 or len(emotion) != len(LABELS):
                continue
            acc.setdefault(song_id, np.zeros(len(LABELS)))
            acc[song_id] += w * np.asarray(emotion, dtype=np.float64)
            count[song_id] = count.get(song_id, 0.0) + abs(w)
    finally:
        con.close()
    out = {}
    for song_id, v in acc.items():
        v = np.clip(v, 0.0, None)
        if v.sum() > 0:
            out[song_id] = (v / v.sum(), count[song_id])
    return out


def _mood_sources(song: Song | None, ed: EditorialRecord | None
                  ) -> dict[str, tuple[Sequence[float], float]]:
    src: dict[str, tuple[Sequence[float], float]] = {}
    if song is not None:
        for name, vec in (song.moods or {song.source: song.vector}).items():
            if name in ("lyrics", "description"):
                conf = float((song.provenance.get("vector") or {}).get("confidence", 1.0))
                src[name] = (vec, conf)
    if ed is not None:
        src["editorial"] = (editorial_vector(ed.mood, ed.also), ed.confidence)
    return src


def build_catalog(labelled: Iterable[Song], editorial: Sequence[EditorialRecord],
                  known: Sequence[KnownSong] = (), *, fusion: FusionModel | None = None,
                  feedback: Mapping[str, tuple[np.ndarray, float]] | None = None
                  ) -> tuple[Catalog, FusionModel, BuildReport]:
    """Fuse every source into format-2 profiles (see the module docstring).

    ``feedback`` (:func:`feedback_moods`) moves each song toward the moods listeners liked it
    in, by at most ``FEEDBACK_CAP`` of its vector; it is applied after the fitted fusion so it
    never changes the weights the known-songs set chose.
    """
    songs = {s.song_id: s for s in labelled}
    eds = {e.song_id: e for e in editorial}
    report = BuildReport()
    # an annotation of a catalogue song must name it exactly: catch typos and renamed songs
    for e in editorial:
        s = songs.get(e.song_id)
        if s is not None and (normalise(s.title), normalise(s.artist)) != (
                normalise(e.title), normalise(e.artist)):
            report.editorial_unmatched.append(f"{e.title} / {e.artist} ({e.file})")
    ids = list(songs) + [i for i in eds if i not in songs]
    sources = [_mood_sources(songs.get(i), eds.get(i)) for i in ids]
    pos = {sid: n for n, sid in enumerate(ids)}
    if fusion is None:
        fit = {pos[k.song_id]: k.moods for k in known if k.split == "fit" and k.song_id in pos}
        fusion = FusionModel.fit(sources, fit)
    report.fusion = fusion.as_dict()
    out: list[Song] = []
    for sid, src in zip(ids, sources, strict=True):
        song = _profile(sid, songs.get(sid), eds.get(sid), src, fusion,
                        (feedback or {}).get(sid))
        out.append(song)
        report.by_sources["+".join(sorted(src))] += 1
        report.by_mood[LABELS[int(np.argmax(song.vector))]] += 1
        report.by_genre[song.genre or "(unknown)"] += 1
    report.songs = len(out)
    return Catalog(out), fusion, report


def _profile(sid: str, song: Song | None, ed: EditorialRecord | None,
             src: Mapping[str, tuple[Sequence[float], float]], fusion: FusionModel,
             fb: tuple[np.ndarray, float] | None = None) -> Song:
    vector = fusion.fuse(src)
    prov: dict[str, dict[str, Any]] = {}
    used = sorted(src)
    prov["vector"] = {"source": "+".join(used), "confidence": round(max(c for _, c in src.values()
                                                                        ), 2)}
    moods = {name: tuple(round(float(x), 6) for x in vec) for name, (vec, _) in src.items()}
    if fb is not None:
        fb_vec, n = fb
        share = FEEDBACK_CAP * n / (n + FEEDBACK_HALF)
        vector = (1 - share) * vector + share * fb_vec
        prov["vector"]["source"] += "+feedback"
        prov["vector"]["feedback_share"] = round(share, 3)
        moods["feedback"] = tuple(round(float(x), 6) for x in fb_vec)
    title = ed.title if song is None else song.title
    artist = ed.artist if song is None else song.artist
    extra = dict(song.extra) if song is not None else {"provenance": ed.file if ed else None}

    def pick(name: str, ed_value: Any, fallback: Any = None, fallback_src: str = "metadata",
             fallback_conf: float = 0.6) -> Any:
        if ed is not None and ed_value not in (None, (), ""):
            prov[name] = {"source": "editorial", "confidence": round(ed.confidence, 2)}
            return ed_value
        if fallback not in (None, (), ""):
            prov[name] = {"source": fallback_src, "confidence": fallback_conf}
            return fallback
        return None

    genre = pick("genre", ed.genre if ed else None, genre_of(song.genre if song else None))
    year = pick("year", ed.year if ed else None, song.year if song else None)
    album = pick("album", ed.album if ed else None, song.album if song else None)
    lyric_lang = song.lang if song is not None else None
    lang = pick("lang", ed.lang if ed else None, lyric_lang, "lyrics",
                float((song.provenance.get("lang") or {}).get("confidence", 0.5)) if song else 0.5)
    lyric_themes = song.themes if song is not None else ()
    themes = pick("themes", ed.themes if ed else None, lyric_themes, "lyrics",
                  float((song.provenance.get("themes") or {}).get("confidence", 0.4))
                  if song else 0.4)
    guess = derived_facets(vector, genre)
    facets: dict[str, Any] = {}
    for name in ("energy", "dance", "tempo", "situations"):
        value, conf = guess[name]
        facets[name] = pick(name, getattr(ed, name) if ed else None, value, "lyrics+metadata",
                            conf)
    return Song(
        song_id=sid, title=title, artist=artist, vector=tuple(round(float(x), 6) for x in vector),
        album=album, genre=genre, year=year, melon_id=song.melon_id if song else None,
        popularity=song.popularity if song else 0.0, source="fused", extra=extra,
        energy=facets["energy"], tempo=facets["tempo"], dance=facets["dance"],
        situations=tuple(facets["situations"] or ()), themes=tuple(themes or ()), lang=lang,
        provenance=prov, moods=moods)
