"""Song lyrics → one 6-d emotion vector per song → the catalogue ``moodtune index`` reads.

The song vector must live in the same space as a user's message, so it comes from the *same*
classifier. A lyric is not a chat sentence, though: it is long (far past the model's window),
repetitive, and its mood is carried by the parts a listener hears most. So:

* **Split** — lyrics are cut into stanzas (blank lines), and each stanza into chunks of
  consecutive lines that fit the model's window (``max_chars`` ≈ the characters the model's
  ``max_length`` tokens cover), so nothing is silently truncated away.
* **Drop repeats** — identical chunks are classified and counted once. (Counting a chorus four
  times let one cliché line — "I love you", "oh yeah" — outvote every verse.)
* **Only Korean votes** — the classifier was trained on Korean chat; an English-only chunk
  ("Hype boy, 내가 말했지" is mixed and votes; "Cause I-I-I'm in the stars tonight" does not) gets
  no weight unless the song has almost no Korean at all, in which case its vector is kept but
  its confidence is low.
* **Weigh by confidence** — each chunk is weighted by the square root of its length (a
  two-word ad-lib weighs less than a verse) times how sure the classifier is about it
  (1 − normalised entropy): an undecided chunk barely moves the song.
* **Aggregate** — the song vector is the weighted mean of the chunk probabilities (still a
  probability vector, so cosine search and explanations read it like a message's vector).
* **Profile** — the song is written as a format-2 profile: its lyric mood (``moods.lyrics``), a
  lyric confidence for fusion, the lyric language and themes from a documented lexicon
  (``training.profile.lyric_themes``), each with its provenance. ``moodtune catalog build``
  later fuses it with editorial annotations.

Songs without lyrics but with a short mood description the project wrote (``source:
"description"``) go through the same classifier, one text per song. A description that names
the mood its writer intended (``intended``) and that the classifier reads as another mood is
held out and reported: only songs whose two reads agree enter the catalogue.

Resumable: each labelled song is appended (and flushed) to ``<out>.partial`` as it is done; a
rerun skips what is there, and the final catalogue is written atomically at the end.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexing.catalog import Catalog, Song, normalise
from inference.emotions import LABELS, NUM_EMOTIONS, UnknownEmotionError, index_of
from training.profile import entropy, hangul_ratio, lyric_language, lyric_themes

__all__ = [
    "LabelReport",
    "SongText",
    "aggregate",
    "label_songs",
    "lyric_chunks",
    "read_described_jsonl",
    "read_lyrics_csv",
    "song_chunks",
    "song_from_probs",
    "song_id_for",
]

# Lines that are credits or markup, not sung words.
_NOISE = re.compile(
    r"^\s*(?:작사|작곡|편곡|노래|가사|lyrics?|composed|written|arranged|\[.*\]|\(.*(?:repeat|반복).*\))"
    r"\s*[:：]?",
    re.IGNORECASE,
)
_SPACES = re.compile(r"[ \t\u3000]+")


class Predictor(Protocol):
    def predict(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class SongText:
    """A song to label: metadata plus the text its vector is read from."""

    song_id: str
    title: str
    artist: str
    text: str
    source: str = "lyrics"  # "lyrics" | "description"
    album: str | None = None
    genre: str | None = None
    year: int | None = None
    melon_id: str | None = None
    extra: dict = field(default_factory=dict)
    intended: str | None = None  # a described song's mood as its writer meant it


@dataclass
class LabelReport:
    labelled: int = 0
    skipped_done: int = 0
    empty: int = 0
    duplicates: int = 0
    chunks: int = 0
    seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)
    # described songs the classifier reads as another mood: (title, artist, intended, read)
    disagreed: list[tuple[str, str, str, str]] = field(default_factory=list)

    @property
    def songs_per_second(self) -> float:
        return self.labelled / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "labelled": self.labelled, "skipped_done": self.skipped_done, "empty": self.empty,
            "duplicates": self.duplicates, "chunks": self.chunks,
            "seconds": round(self.seconds, 2), "songs_per_second": round(self.songs_per_second, 1),
            "errors": dict(self.errors), "disagreed": len(self.disagreed),
        }


def song_id_for(title: str, artist: str, melon_id: str | int | None = None) -> str:
    """Stable id: the Melon id when known, else a hash of the normalised title and artist.

    Stable ids matter beyond labelling: feedback and CF factors refer to songs by id, so
    relabelling a catalogue must not orphan what users told us about its songs.
    """
    if melon_id not in (None, ""):
        return f"melon:{melon_id}"
    h = hashlib.sha1(f"{normalise(title)}\x1f{normalise(artist)}".encode()).hexdigest()[:12]
    return f"ta:{h}"


def lyric_chunks(lyrics: str, max_chars: int = 120) -> list[str]:
    """Stanzas → chunks of whole consecutive lines of at most ``max_chars`` characters.

    A single line longer than ``max_chars`` (prose-like lyrics, rap verses) is cut at spaces.
    Credit lines and empty lines are dropped; whitespace is normalised so that repeats of a
    chorus compare equal.
    """
    text = unicodedata.normalize("NFC", lyrics.replace("\r\n", "\n").replace("\r", "\n"))
    stanzas = re.split(r"\n\s*\n", text)
    out: list[str] = []
    for stanza in stanzas:
        lines = [_SPACES.sub(" ", ln).strip() for ln in stanza.split("\n")]
        lines = [ln for ln in lines if ln and not _NOISE.match(ln)]
        cur = ""
        for ln in lines:
            for piece in _split_long(ln, max_chars):
                if cur and len(cur) + 1 + len(piece) > max_chars:
                    out.append(cur)
                    cur = piece
                else:
                    cur = f"{cur} {piece}" if cur else piece
        if cur:
            out.append(cur)
    return out


def _split_long(line: str, max_chars: int) -> Iterator[str]:
    while len(line) > max_chars:
        cut = line.rfind(" ", 0, max_chars)
        cut = cut if cut > max_chars // 3 else max_chars
        yield line[:cut].strip()
        line = line[cut:].strip()
    if line:
        yield line


def aggregate(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of probability rows, renormalised to sum to one."""
    w = np.asarray(weights, dtype=np.float64)
    v = (np.asarray(probs, dtype=np.float64) * w[:, None]).sum(axis=0) / max(w.sum(), 1e-12)
    return (v / v.sum()).astype(np.float32)


#: A chunk votes as Korean when at least this share of its letters is Hangul.
KOREAN_CHUNK = 0.3


def _chunk_weights(chunks: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Unique chunks (repeats dropped) and their prior weights: sqrt(length), zero for chunks
    that are not Korean — unless no chunk is, when all of them vote (an English song)."""
    uniq = list(dict.fromkeys(chunks))
    korean = np.asarray([hangul_ratio(c) >= KOREAN_CHUNK for c in uniq])
    if not korean.any():
        korean[:] = True
    w = np.asarray([np.sqrt(len(c)) for c in uniq], dtype=np.float64) * korean
    return uniq, w


def confidence_weights(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """``prior × (1 − H(p)/log 6)``: a chunk the classifier is unsure about barely counts."""
    certainty = 1.0 - entropy(probs) / np.log(NUM_EMOTIONS)
    w = np.asarray(prior, dtype=np.float64) * np.clip(certainty, 0.02, 1.0)
    return w if w.sum() > 0 else np.asarray(prior, dtype=np.float64)


def lyric_confidence(chunks: Sequence[str]) -> float:
    """How much to trust a lyric vector in fusion: more Korean chunks → surer (0.2 … 1.0)."""
    uniq = list(dict.fromkeys(chunks))
    korean = sum(1 for c in uniq if hangul_ratio(c) >= KOREAN_CHUNK)
    return round(max(0.2, min(1.0, korean / 8)), 2)


# ---------------------------------------------------------------------------------- readers
def read_lyrics_csv(path: str | Path) -> Iterator[SongText]:
    """``title,artist,genre,lyrics`` (+ optional ``album,year,melon_id``) rows."""
    p = Path(path)
    with p.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"title", "artist", "lyrics"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{p}: missing columns {sorted(missing)} (has {reader.fieldnames})")
        for row in reader:
            title = (row.get("title") or "").strip()
            artist = (row.get("artist") or "").strip()
            if not title:
                continue
            year = (row.get("year") or "").strip()
            melon_id = (row.get("melon_id") or "").strip() or None
            yield SongText(
                song_id=song_id_for(title, artist, melon_id), title=title, artist=artist,
                text=row.get("lyrics") or "", source="lyrics",
                album=(row.get("album") or "").strip() or None,
                genre=(row.get("genre") or "").strip() or None,
                year=int(year) if year.isdigit() else None, melon_id=melon_id,
                extra={"provenance": p.name})


def read_crawl_db(path: str | Path) -> Iterator[SongText]:
    """Every ``found`` song of a crawl database (``moodtune crawl``)."""
    from crawler.state import iter_lyrics

    for r in iter_lyrics(path):
        mid = str(r.melon_id) if r.melon_id else None
        yield SongText(
            song_id=song_id_for(r.title, r.artist, mid), title=r.title, artist=r.artist,
            text=r.lyrics, source="lyrics", album=r.album, genre=r.genre, year=r.year,
            melon_id=mid, extra={"provenance": "crawl", "seed_id": r.seed_id})


def read_described_jsonl(path: str | Path) -> Iterator[SongText]:
    """Songs the project describes in a sentence of its own (no lyrics are used)."""
    p = Path(path)
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                title, artist, text = d["title"].strip(), d["artist"].strip(), d["mood_ko"]
                if d.get("intended"):
                    index_of(d["intended"])
            except (json.JSONDecodeError, KeyError, AttributeError, UnknownEmotionError) as exc:
                raise ValueError(f"{p}:{lineno}: bad record ({exc})") from exc
            yield SongText(
                song_id=song_id_for(title, artist, d.get("melon_id")), title=title,
                artist=artist, text=text, source="description", genre=d.get("genre"),
                year=d.get("year"),
                melon_id=str(d["melon_id"]) if d.get("melon_id") else None,
                extra={"provenance": p.name, "description": text},
                intended=d.get("intended"))


# ---------------------------------------------------------------------------------- labelling
def _song_from(st: SongText, vec: np.ndarray, chunks: Sequence[str]) -> Song:
    """A format-2 profile with what the text tells: mood, and for lyrics language and themes."""
    vector = tuple(round(float(x), 6) for x in vec)
    extra = {**st.extra, "chunks": len(chunks)}
    source = st.source
    if source == "lyrics":
        conf = lyric_confidence(chunks)
        lines = [ln for ln in st.text.splitlines() if ln.strip() and not _NOISE.match(ln)]
        lang, lang_conf = lyric_language(lines)
        themes = lyric_themes(lines)
        provenance = {"vector": {"source": "lyrics", "confidence": conf},
                      "lang": {"source": "lyrics", "confidence": lang_conf}}
        if themes:
            provenance["themes"] = {"source": "lyrics",
                                    "confidence": round(max(c for _, c in themes), 2)}
        return Song(song_id=st.song_id, title=st.title, artist=st.artist, vector=vector,
                    album=st.album, genre=st.genre, year=st.year, melon_id=st.melon_id,
                    source=source, extra=extra, lang=lang,
                    themes=tuple(t for t, _ in themes), provenance=provenance,
                    moods={"lyrics": vector})
    return Song(song_id=st.song_id, title=st.title, artist=st.artist, vector=vector,
                album=st.album, genre=st.genre, year=st.year, melon_id=st.melon_id,
                source=source, extra=extra,
                provenance={"vector": {"source": source, "confidence": 1.0}},
                moods={source: vector})


def song_chunks(st: SongText, max_chars: int = 120) -> list[str]:
    """The texts a song is read from: its lyric chunks, or its description as one text.

    Shared by the local and the Spark labeller so both cut a song the same way; empty means
    the song has nothing to label (it is counted, never given a made-up vector).
    """
    if st.source == "description":
        return [" ".join(st.text.split())] if st.text.strip() else []
    return lyric_chunks(st.text, max_chars)


def song_from_probs(st: SongText, probs: np.ndarray, prior: np.ndarray,
                    chunks: Sequence[str]) -> tuple[Song | None, str]:
    """One song's catalogue record from its unique chunks' probabilities (a pure function).

    ``probs`` are the rows of ``_chunk_weights(chunks)[0]`` and ``prior`` their weights. Returns
    ``(song, read)`` with ``read`` the label the classifier gives the song; ``song`` is None for
    a described song whose writer's intended mood is another (hold it out and name it). Both
    the local and the Spark labeller call this, so their catalogue lines cannot drift apart.
    """
    vec = aggregate(probs, confidence_weights(probs, prior))
    read = LABELS[int(np.argmax(vec))]
    if st.intended and index_of(st.intended) != index_of(read):
        # A description is a sentence we wrote to say the song's mood; when the classifier
        # reads another mood, its vector would file the song under the wrong one.
        return None, read
    return _song_from(st, vec, chunks), read


def _read_partial(path: Path) -> dict[str, Song]:
    done: dict[str, Song] = {}
    if not path.exists():
        return done
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                s = Song.from_json(json.loads(line))
            except Exception:  # a torn last line after a kill: relabel that song
                continue
            done[s.song_id] = s
    return done


def label_songs(
    songs: Iterable[SongText],
    classifier: Predictor,
    out_path: str | Path,
    *,
    max_chars: int = 120,
    songs_per_batch: int = 32,
    resume: bool = True,
    progress: bool = True,
    total: int | None = None,
    log: Callable[[str], None] = print,
) -> LabelReport:
    """Label ``songs`` and write the catalogue to ``out_path`` (JSON Lines, atomic).

    Songs are classified ``songs_per_batch`` at a time, all their chunks in one ``predict`` call
    (which sorts by length and batches internally). Duplicate (title, artist) pairs keep the
    first; a song with no usable text is counted and skipped, never given a made-up vector.
    """
    from tqdm.auto import tqdm

    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    if not resume:
        partial.unlink(missing_ok=True)
    done = _read_partial(partial)
    report = LabelReport(skipped_done=len(done))
    seen_keys = {(normalise(s.title), normalise(s.artist)) for s in done.values()}
    t0 = time.perf_counter()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, disable=not progress, unit="song", desc="labelling")
    bar.update(len(done))
    with partial.open("a", encoding="utf-8") as fh:
        batch: list[tuple[SongText, list[str], np.ndarray, list[str]]] = []

        def flush() -> None:
            if not batch:
                return
            texts = [c for _, chunks, _, _ in batch for c in chunks]
            probs = classifier.predict(texts)
            report.chunks += len(texts)
            pos = 0
            for st, chunks, w, all_chunks in batch:
                song, read = song_from_probs(st, probs[pos : pos + len(chunks)], w, all_chunks)
                pos += len(chunks)
                if song is None:
                    report.disagreed.append((st.title, st.artist, st.intended or "", read))
                    continue
                fh.write(json.dumps(song.to_json(), ensure_ascii=False) + "\n")
                done[song.song_id] = song
                report.labelled += 1
            fh.flush()
            bar.update(len(batch))
            bar.set_postfix(chunks=report.chunks)
            batch.clear()

        for st in songs:
            if st.song_id in done:
                continue
            key = (normalise(st.title), normalise(st.artist))
            if key in seen_keys:
                report.duplicates += 1
                continue
            chunks = song_chunks(st, max_chars)
            if not chunks:
                report.empty += 1
                bar.update(1)
                continue
            seen_keys.add(key)
            uniq, w = _chunk_weights(chunks)
            batch.append((st, uniq, w, chunks))
            if len(batch) >= songs_per_batch:
                flush()
        flush()
    bar.close()
    report.seconds = time.perf_counter() - t0
    if not done:
        raise ValueError("no song could be labelled: every input was empty or a duplicate")
    Catalog(done.values()).save(out_path)
    partial.unlink(missing_ok=True)
    log(f"labelled {report.labelled} songs ({report.skipped_done} from an earlier run, "
        f"{report.empty} without text, {report.duplicates} duplicates) in {report.seconds:.1f}s "
        f"= {report.songs_per_second:.1f} songs/s, {report.chunks} chunks -> {out_path}")
    log_held_out(report, log)
    return report


def log_held_out(report: LabelReport, log: Callable[[str], None]) -> None:
    """Name the described songs that were held out, so their author can fix the description
    (both labelling engines report it the same way)."""
    if report.disagreed:
        log(f"held out {len(report.disagreed)} described songs whose description the classifier "
            "reads as another mood (rewrite the description to keep them): " + "; ".join(
                f"{t} / {a} ({want} -> {got})" for t, a, want, got in report.disagreed))
