"""Pure HTML parsing of Melon pages (search results, album track list, song detail) + matching.

Kept free of I/O so every rule is unit-tested on small fixture pages. Fields are found by CSS
class and by their *label* (``dt`` 앨범/발매일/장르), never by position, because Melon reorders and
adds rows (e.g. FLAC) over time. Anything that does not look like the expected page raises
:class:`MelonParseError` — an empty lyric from a broken page would silently poison the labeller.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bs4 import BeautifulSoup, Comment, NavigableString, Tag

__all__ = [
    "AlbumRow",
    "MatchOutcome",
    "MelonParseError",
    "SearchRow",
    "SongPage",
    "artist_matches",
    "choose_row",
    "normalize_artist_variants",
    "normalize_title",
    "parse_album",
    "parse_search",
    "parse_song",
]

_SONG_ID_RE = re.compile(r"goSongDetail\(\s*['\"]?(\d+)['\"]?\s*\)")
_LINK_SUFFIX_RE = re.compile(r"\s*-\s*페이지\s*이동\s*$")
_PLAY_SUFFIX_RE = re.compile(r"\s*재생\s*$")
_ADULT_RE = re.compile(r"19세\s*이상|성인\s*인증|청소년\s*유해|연령\s*인증")
_NOT_READY_RE = re.compile(r"가사\s*준비\s*중")
_PAREN_RE = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|（[^（）]*）|【[^【】]*】")
_FEAT_RE = re.compile(r"\s(?:feat\.?|ft\.|featuring|with)\s.*$", re.IGNORECASE)
_NON_WORD_RE = re.compile(r"[\W_]+", re.UNICODE)


class MelonParseError(ValueError):
    """The page is not the Melon page we asked for (layout change, error page, truncated body).

    Counted as a crawl *error* (retryable with ``--retry-errors``), never as "no lyrics".
    """


# --------------------------------------------------------------------------------------------
# normalisation and matching
# --------------------------------------------------------------------------------------------


def _squash(text: str) -> str:
    return _NON_WORD_RE.sub("", text)


def normalize_title(title: str) -> str:
    """NFKC, lower-case, drop ``(Feat. …)``/``[…]`` parts, punctuation and spaces.

    "밤편지 (Feat. X)" and "밤 편지!" compare equal. If dropping brackets leaves nothing (a title
    that *is* a parenthesis) the bracket text is kept.
    """
    t = unicodedata.normalize("NFKC", title).lower()
    stripped = _FEAT_RE.sub("", _PAREN_RE.sub(" ", t))
    out = _squash(stripped)
    return out or _squash(t)


def normalize_artist_variants(name: str) -> set[str]:
    """Comparable forms of one artist name: whole, outside and inside parentheses.

    Melon writes "IVE (아이브)" where the Arena writes "아이브" (or the reverse), so each part is a
    variant of its own.
    """
    t = unicodedata.normalize("NFKC", name).lower()
    variants = {_squash(t), _squash(_PAREN_RE.sub(" ", t))}
    variants.update(_squash(m[1:-1]) for m in _PAREN_RE.findall(t))
    return {v for v in variants if v}


def artist_matches(wanted: Iterable[str], found: Iterable[str]) -> bool:
    """True if any wanted artist shares a name variant with any found artist.

    Containment counts too (>= 2 chars) so "BTS" matches "방탄소년단 (BTS)" and a CSV artist
    "A, B" matches Melon's "A".
    """
    found_v = set().union(*(normalize_artist_variants(f) for f in found)) if found else set()
    if not found_v:
        return False
    for w in wanted:
        for wv in normalize_artist_variants(w):
            if wv in found_v:
                return True
            if len(wv) >= 2 and any(len(fv) >= 2 and (wv in fv or fv in wv) for fv in found_v):
                return True
    return False


@dataclass(frozen=True, slots=True)
class SearchRow:
    """One song row of a search result or album page."""

    song_id: int
    title: str
    artists: tuple[str, ...] = ()


AlbumRow = SearchRow

MatchReason = Literal["matched", "no_rows", "title_mismatch", "artist_mismatch"]


@dataclass(frozen=True, slots=True)
class MatchOutcome:
    """Which row (if any) was chosen and why — the reason is stored for not-found songs."""

    row: SearchRow | None
    reason: MatchReason
    candidates: int = 0


def choose_row(
    rows: Sequence[SearchRow], title: str, artists: Sequence[str], *, require_artist: bool = True
) -> MatchOutcome:
    """Pick the row whose normalised title equals the seed's and whose artist matches.

    Duplicate titles by different artists are common ("사랑", "Love"), so the artist decides when
    required (search). On an album page every row is by the album's artist, so
    ``require_artist=False`` takes the first title match, preferring one whose artist also matches.
    """
    if not rows:
        return MatchOutcome(None, "no_rows")
    want = normalize_title(title)
    titled = [r for r in rows if normalize_title(r.title) == want]
    if not titled:
        return MatchOutcome(None, "title_mismatch", len(rows))
    for r in titled:
        if artist_matches(artists, r.artists):
            return MatchOutcome(r, "matched", len(rows))
    if not require_artist:
        return MatchOutcome(titled[0], "matched", len(rows))
    return MatchOutcome(None, "artist_mismatch", len(rows))


# --------------------------------------------------------------------------------------------
# pages
# --------------------------------------------------------------------------------------------


def _soup(html: str) -> BeautifulSoup:
    if "</html" not in html[-4096:].lower():
        # Real Melon pages always close </html>; a body cut short (dropped connection, proxy
        # limit) would otherwise parse into a page with the lyrics silently missing.
        raise MelonParseError("truncated page (no closing </html>)")
    return BeautifulSoup(html, "lxml")


def _text(node: Tag | None) -> str:
    return " ".join(node.get_text(" ", strip=True).split()) if node is not None else ""


def _row_song_id(tr: Tag) -> int | None:
    box = tr.select_one("input[name=check_song], input.check_song, input.input_check")
    if box is not None and str(box.get("value", "")).strip().isdigit():
        return int(str(box["value"]).strip())
    m = _SONG_ID_RE.search(str(tr))
    return int(m.group(1)) if m else None


def _link_name(a: Tag) -> str:
    title = _LINK_SUFFIX_RE.sub("", str(a.get("title") or "")).strip()
    return _text(a) or title


def parse_search(html: str) -> list[SearchRow]:
    """Rows of ``/search/song/index.htm?section=song`` (``#frm_defaultList table tbody tr``).

    A page with neither the result form nor Melon's "no results" block is not a search page.
    """
    soup = _soup(html)
    form = soup.select_one("#frm_defaultList")
    if form is None:
        if soup.select_one(".section_no_data, .no_data, .nodata") or re.search(
                r"검색\s*결과가\s*없습니다|검색된\s*곡이\s*없습니다", soup.get_text()):
            return []
        raise MelonParseError("not a Melon search result page (no #frm_defaultList)")
    rows: list[SearchRow] = []
    for tr in form.select("table tbody tr"):
        song_id = _row_song_id(tr)
        title_a = tr.select_one(".ellipsis a.fc_gray") or tr.select_one("a.fc_gray")
        if song_id is None or title_a is None:
            continue
        title = _text(title_a) or _PLAY_SUFFIX_RE.sub("", str(title_a.get("title") or ""))
        artist_as = tr.select("#artistName > a") or tr.select(".checkEllipsis a") \
            or tr.select("#artistName a")
        artists = tuple(dict.fromkeys(n for n in (_link_name(a) for a in artist_as) if n))
        rows.append(SearchRow(song_id, title, artists))
    return rows


def parse_album(html: str) -> list[SearchRow]:
    """Track rows of ``/album/detail.htm?albumId=N`` (``goSongDetail('N')`` per row)."""
    soup = _soup(html)
    table_rows = soup.select("form#frm table tbody tr") or soup.select("table tbody tr")
    if not table_rows and soup.select_one(".wrap_album_info, .section_info") is None:
        raise MelonParseError("not a Melon album page (no track table)")
    rows: list[SearchRow] = []
    for tr in table_rows:
        song_id = _row_song_id(tr)
        if song_id is None:
            continue
        ellipses = tr.select(".wrap_song_info .ellipsis")
        if not ellipses:
            continue
        title_node = ellipses[0].select_one("a[title]") or ellipses[0].select_one("span") \
            or ellipses[0]
        title = _text(title_node)
        if not title and isinstance(title_node, Tag):
            title = _PLAY_SUFFIX_RE.sub("", str(title_node.get("title") or "")).strip()
        artist_box = ellipses[1] if len(ellipses) > 1 else None
        artist_as = []
        if artist_box is not None:
            artist_as = artist_box.select(".checkEllipsis a") or artist_box.select("a")
        artists = tuple(dict.fromkeys(n for n in (_link_name(a) for a in artist_as) if n))
        if title:
            rows.append(SearchRow(song_id, title, artists))
    return rows


SongStatus = Literal["found", "no_lyrics"]


@dataclass(slots=True)
class SongPage:
    """What a song detail page says. ``lyrics`` is None unless ``status == 'found'``."""

    song_id: int | None
    title: str
    artists: tuple[str, ...] = ()
    album: str | None = None
    release_date: str | None = None
    genre: str | None = None
    lyrics: str | None = None
    status: SongStatus = "found"
    reason: str | None = None
    adult: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def _lyrics_text(div: Tag) -> str:
    """HTML semantics: ``<br>`` is a line break, source newlines are just whitespace."""
    parts: list[str] = []
    for node in div.descendants:
        if isinstance(node, Tag):
            if node.name == "br":
                parts.append("\n")
        elif isinstance(node, NavigableString) and not isinstance(node, Comment):
            parts.append(re.sub(r"\s+", " ", str(node)))
    lines = [line.strip() for line in "".join(parts).split("\n")]
    text = "\n".join(lines).strip()
    return re.sub(r"\n{3,}", "\n\n", text)


def _release_date(raw: str) -> str:
    """"2021.03.25" -> "2021-03-25" (partial dates keep what they have)."""
    parts = re.findall(r"\d+", raw)
    if parts and len(parts[0]) == 4:
        return "-".join([parts[0], *(p.zfill(2) for p in parts[1:3])])
    return raw.strip()


def parse_song(html: str, song_id: int | None = None) -> SongPage:
    """Parse ``/song/detail.htm?songId=N``.

    ``no_lyrics`` (with reason) for "가사 준비중", a missing lyric block, or an adult-verification
    notice; :class:`MelonParseError` when ``div.song_name`` is missing (not a song page).
    """
    soup = _soup(html)
    name_div = soup.select_one("div.song_name")
    if name_div is None:
        if _ADULT_RE.search(soup.get_text(" ")):
            return SongPage(song_id, "", status="no_lyrics", reason="adult_verification",
                            adult=True)
        raise MelonParseError("not a Melon song page (no div.song_name)")
    adult = name_div.select_one("span.bullet_icons.age_19, span.age_19") is not None \
        or "19금" in name_div.get_text()
    for junk in name_div.select("strong, span.bullet_icons"):
        junk.decompose()
    title = _text(name_div)
    title = re.sub(r"^(?:곡명\s*)?(?:19금\s*)?", "", title).strip()
    if not title:
        raise MelonParseError("song page has an empty title")

    artist_as = soup.select("div.artist a.artist_name")
    names = []
    for a in artist_as:
        name = _LINK_SUFFIX_RE.sub("", str(a.get("title") or "")).strip() or _text(a)
        if name:
            names.append(name)
    if not names:
        fallback = _text(soup.select_one("div.artist"))
        names = [fallback] if fallback else []

    meta: dict[str, str] = {}
    for dl in soup.select("div.meta dl.list"):
        for dt in dl.find_all("dt"):
            dd = dt.find_next_sibling("dd")
            if dd is not None:
                meta[_text(dt)] = _text(dd)
    page = SongPage(
        song_id=song_id,
        title=title,
        artists=tuple(dict.fromkeys(names)),
        album=meta.get("앨범") or None,
        release_date=_release_date(meta["발매일"]) if meta.get("발매일") else None,
        genre=meta.get("장르") or None,
        adult=adult,
        extra={k: v for k, v in meta.items() if k not in {"앨범", "발매일", "장르"}},
    )

    lyric_div = soup.select_one("div#d_video_summary") or soup.select_one("div.lyric")
    if lyric_div is None:
        section_text = _text(soup.select_one(".section_lyric, .lyric_none, #lyricArea"))
        page_text = soup.get_text(" ")
        page.status = "no_lyrics"
        if _ADULT_RE.search(section_text) or (adult and _ADULT_RE.search(page_text)):
            page.reason = "adult_verification"
        elif _NOT_READY_RE.search(section_text or page_text):
            page.reason = "lyrics_not_ready"
        else:
            page.reason = "no_lyric_block"
        return page
    lyrics = _lyrics_text(lyric_div)
    if _ADULT_RE.search(lyrics) and len(lyrics) < 200:
        page.status, page.reason = "no_lyrics", "adult_verification"
    elif _NOT_READY_RE.search(lyrics) and len(lyrics) < 100:
        page.status, page.reason = "no_lyrics", "lyrics_not_ready"
    elif not lyrics:
        page.status, page.reason = "no_lyrics", "empty_lyrics"
    else:
        page.lyrics = lyrics
    return page
