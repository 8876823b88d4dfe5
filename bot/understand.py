"""What a chat message asks for: intent and slots, read by rules, before any model runs.

Why rules and not a model: the vocabulary a request can be matched against is closed (the
catalogue's artists and titles, ``indexing.facets``), chat Korean is short and formulaic ("아이유
노래", "자기전에 들을 거", "2번 좋다"), and the engine needs an answer in well under a
millisecond with no I/O. Everything is matched on a *compact* form of the text (NFC, case and
width folded, spaces and punctuation removed) so "자기전에" = "자기 전에" and "버스커버스커" =
"버스커 버스커"; matches must start where a word starts, so a name never fires inside another
word. The word lists are grounded in what people tag Melon playlists with (Kakao Arena
``kakao_arena_tag_counts.tsv``: 기분전환, 잔잔한, 새벽, 드라이브, 운동할때, 잠들기전, 집중 …) and
are written here, not read at run time.

``Lexicon`` holds the catalogue side (artists with their aliases, seed titles); build it once per
catalogue. ``understand(text, lexicon, has_thread=...)`` returns a ``Request``. The mood rule
layer that uses the cues found here lives in ``bot.moodrules``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, fields

from bot.feedback import Signal
from indexing.catalog import normalise
from indexing.facets import GENRES, SITUATIONS, THEMES
from inference.emotions import LABELS, parse_emotion
from inference.text import INVISIBLE, clean_text

__all__ = [
    "INTENTS",
    "REFINEMENTS",
    "SMALLTALK",
    "Lexicon",
    "Request",
    "understand",
]

INTENTS: tuple[str, ...] = ("recommend", "refine", "feedback", "smalltalk", "help", "privacy")
#: How a follow-up changes the previous answer. "more" = more of the same request, "other" =
#: something different; the rest name what changes.
REFINEMENTS: tuple[str, ...] = (
    "more_energy", "calmer", "other", "more", "genre", "artist", "mood", "situation", "theme",
    "like_position",
)
SMALLTALK: tuple[str, ...] = ("greeting", "thanks", "ack", "about", "bye")


@dataclass(frozen=True, slots=True)
class Request:
    """One message, understood. Empty fields mean "not said".

    - ``intent``: one of ``INTENTS``. Feedback and refinements exist only with a thread.
    - ``genres``/``situations``/``themes``: canonical values of ``indexing.facets``;
      ``exclude_genres``/``exclude_artists``: what was refused ("발라드 말고").
    - ``artists``: catalogue artist strings exactly as in the catalogue (every string crediting the
      act); ``unknown_artist``: a name as typed that the catalogue does not have.
    - ``energy``: "up"/"down"; ``mood``: a mood asked of the *songs* ("슬픈 노래", "/mood 평화");
      ``like_song``: the seed's ``song_id``.
    - ``strategy``: "match" or "lift" (toward ``target_mood``: 기쁨 or 평화).
    - ``refinement`` (one of ``REFINEMENTS``) with ``position`` for "2번 같은 거"; ``signal`` (a
      ``bot.feedback.Signal`` value) with ``position`` for "2번 좋다", none for the whole answer.
    - ``negated_mood``, ``mood_hint`` and ``cues`` (the rule names that fired) are for
      ``bot.moodrules.adjust_mood``; ``text`` is the cleaned text for the classifier.
    - ``prefer_themes``: themes the answer should lean toward without being limited to them
      (someone worn out is offered comfort songs among the sad ones, not only breakup ballads);
      ``season`` likewise leans toward songs titled for it ("봄에 듣기 좋은 노래").
    """

    intent: str
    genres: tuple[str, ...] = ()
    artists: tuple[str, ...] = ()
    unknown_artist: str | None = None
    situations: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    energy: str | None = None
    like_song: str | None = None
    mood: str | None = None
    strategy: str = "match"
    target_mood: str | None = None
    refinement: str | None = None
    position: int | None = None
    signal: str | None = None
    smalltalk: str | None = None
    negated_mood: str | None = None
    mood_hint: str | None = None
    exclude_genres: tuple[str, ...] = ()
    exclude_artists: tuple[str, ...] = ()
    prefer_themes: tuple[str, ...] = ()
    season: str | None = None
    cues: tuple[str, ...] = ()
    text: str = ""

    def as_dict(self, *, trace: bool = False) -> dict:
        """Only the fields that say something (``strategy`` only when it is not "match").

        ``cues`` (which mood rules the text triggered) and ``prefer_themes`` (a soft preference
        inferred from how the person feels) are traces, not something the user asked for, so
        they are left out unless ``trace=True``.
        """
        out: dict = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v in (None, (), "") or (f.name == "strategy" and v == "match"):
                continue
            if f.name in ("cues", "prefer_themes", "season") and not trace:
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


# ---- text folding ---------------------------------------------------------------------------
#: Characters read for intent and slots (the classifier still gets the whole text).
_MAX_READ = 300
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_PHRASES = (  # multi-word spellings folded to one token before tokenising
    (re.compile(r"(?<![a-z])r\s*(?:&|n|and|앤|엔)\s*b(?![a-z])", re.I), "rnb"),
    (re.compile(r"(?<![a-z])([kj])\s*-\s*pop(?![a-z])", re.I), r"\1pop"),
    (re.compile(r"(?<![a-z])hip\s*-?\s*hop(?![a-z])", re.I), "hiphop"),
    (re.compile(r"(?<![a-z])lo\s*-?\s*fi(?![a-z])", re.I), "lofi"),
)
_RUNS = re.compile(r"(.)\1{2,}")
_TOKEN = re.compile(r"[가-힣]+|[ㄱ-ㅎㅏ-ㅣ]+|[a-z0-9]+")


def _words(text: str) -> frozenset[str]:
    """A word list written as one string (easier to read and extend than a list literal)."""
    return frozenset(text.split())


def _fold(text: str) -> str:
    t = unicodedata.normalize("NFC", text).translate(_FULLWIDTH)
    t = INVISIBLE.sub("", t).lower()
    t = _RUNS.sub(r"\1\1", t)  # "ㅋㅋㅋㅋㅋㅋ" → "ㅋㅋ": same reading, and no pattern sees a long run
    for rx, rep in _PHRASES:
        t = rx.sub(rep, t)
    return t


class _Text:
    """A message in the forms the matchers need: folded, compact, and word starts in compact."""

    __slots__ = ("compact", "folded", "starts", "surface", "tokens")

    def __init__(self, raw: str) -> None:
        self.folded = _fold(raw)
        toks = [(m.group(0), m.start()) for m in _TOKEN.finditer(self.folded)]
        self.tokens = [t for t, _ in toks]
        starts, pos, surface = [], 0, []
        for tok, at in toks:
            starts.append(pos)
            surface.extend(range(at, at + len(tok)))
            pos += len(tok)
        self.compact = "".join(self.tokens)
        self.starts = starts
        self.surface = surface  # compact index → index in folded

    def span(self, s: int, e: int) -> str:
        """The folded text a compact span came from (spaces kept)."""
        return self.folded[self.surface[s]: self.surface[e - 1] + 1]

    def is_end(self, i: int) -> bool:
        return i >= len(self.compact) or i in self.starts


# ---- word lists -----------------------------------------------------------------------------
# Particles and music nouns that may follow a name: "아이유의", "아이유꺼", "아이유 노래로".
_PARTICLE = re.compile(
    r"(?:이랑|랑|하고|이나|이든|의|이|가|은|는|을|를|도|만|과|와|처럼|님|씨|께|에|로|으로|요|들|"
    r"꺼|껄|거|걸|것|노래|곡|신곡|음악|앨범|스타일|느낌|같은|같이|풍|st)"
)
_MUSIC_NOUN = re.compile(r"(?:의)?(?:노래|곡|신곡|음악|앨범|꺼|껄|거|걸|것|플리|뮤비|콘서트|같은|느낌|스타일)")
# After a seed title: a strong marker, or 같은/같이/처럼 with a music noun close behind ("밤편지
# 같은 노래"); alone those are everyday Korean ("습관처럼", "거짓말같이 느껴져").
_LIKE_AFTER = re.compile(
    r"(?:이랑|랑|하고|과|와)?(?:비슷한|비슷하게|비스무리|느낌|스타일|풍의?|분위기|st|류의?|계열"
    r"|(?:같은|같이|처럼)(?=거|걸|것|.{0,6}?(?:노래|곡|음악|songs?|music)))"
)

#: canonical genre → compact spellings people type (Kakao Arena tags: 발라드, 힙합, 랩, 알앤비,
#: 락, 록, 일렉, EDM, 팝송, 재즈, 뉴에이지, 연주곡, 아이돌, 국힙, 외힙, 트로트, 찬양 …).
_GENRE_WORDS: dict[str, tuple[str, ...]] = {
    "발라드": ("발라드", "ballad", "감성발라드"),
    "댄스": ("댄스", "댄스곡", "아이돌", "케이팝", "kpop", "걸그룹", "보이그룹", "dance"),
    "랩/힙합": ("힙합", "hiphop", "랩", "rap", "국힙", "외힙", "국내힙합", "외국힙합", "한국힙합", "힙합엘이"),
    "R&B/Soul": ("rnb", "알앤비", "알엔비", "소울", "soul", "알비"),
    "인디음악": ("인디", "indie", "인디음악", "인디밴드", "인디팝"),
    "록/메탈": ("락", "록", "rock", "메탈", "metal", "밴드음악", "밴드노래", "락밴드", "록밴드", "락음악", "록음악"),
    "성인가요/트로트": ("트로트", "트롯", "성인가요", "뽕짝", "trot"),
    "포크/블루스": ("포크", "folk", "블루스", "blues", "통기타"),
    "POP": ("팝송", "팝", "pop", "올드팝", "빌보드", "외국노래"),
    "일렉트로니카": ("일렉", "일렉트로니카", "일렉트로닉", "edm", "전자음악", "electronic"),
    "OST": ("ost", "드라마노래", "드라마ost", "영화음악", "영화ost", "애니ost", "사운드트랙", "soundtrack"),
    "클래식": ("클래식", "classical", "오케스트라"),
    "재즈": ("재즈", "jazz", "재즈힙합"),
    "뉴에이지": ("뉴에이지", "피아노연주곡", "연주곡", "newage"),
    "J-POP": ("jpop", "제이팝", "일본노래", "일본음악"),
    "CCM": ("ccm", "찬양", "찬송가", "복음성가"),
    "국악": ("국악",),
    "뮤지컬": ("뮤지컬", "musical"),
}
# Genre words this short must end at a word end or before a particle ("랩탑", "팝콘", "연락").
_GENRE_SHORT = 2

_SITUATION_RX: dict[str, re.Pattern[str]] = {k: re.compile(v) for k, v in {
    "기분전환": r"기분전환|분위기전환|리프레시|refresh",
    "휴식": r"휴식|쉴때|쉬면서|쉬는중|쉬고싶|쉬는날|릴렉스|relax|누워서|뒹굴",
    "드라이브": r"드라이브|운전|차에서|차안에서|차타고|드라이빙|drive|driving|roadtrip",
    "운동": r"운동|러닝|런닝|달리기|달릴때|뛸때|조깅|헬스|웨이트|홈트|필라테스|크로스핏|등산|줄넘기"
            r"|workout|gym|running|jogging|exercise|fitness",
    "새벽": r"새벽|밤늦게|늦은밤|한밤중|야밤|심야|latenight|3am",
    "카페": r"카페|까페|커피|아메리카노|라떼|카공|브런치|cafe|coffee",
    "잠": r"자기전|잘때|잠들|잠잘|잠이안|잠안|잠이잘|자장가|꿀잠|숙면|수면|불면|자려고|잘려고|자고싶"
         r"|sleep|bedtime|insomnia",
    "공부": r"공부|집중|과제|독서실|도서관|카공|코딩|작업할때|작업용|일할때|업무중|독서|책읽|노동요"
            r"|study|focus|homework",
    "여행": r"여행|비행기|기차타|휴가|바캉스|캠핑|trip|travel|vacation",
    "비오는날": r"비오는|비가오|비와서|비가와|비온다|비내리|비가내|빗소리|장마|rainy",
    "산책": r"산책|걸을때|걸으면서|걷는중|걷다가|동네한바퀴|walk",
    "출퇴근": r"출퇴근|출근길|퇴근길|출근할때|퇴근할때|출근하면서|퇴근하면서|지하철|통학|등교|하교|등굣길"
              r"|하굣길|commute",
    "파티": r"파티|클럽|불금|노래방|party|club|페스티벌",
    "힐링": r"힐링|치유|healing",
}.items()}

_THEME_RX: dict[str, re.Pattern[str]] = {k: re.compile(v) for k, v in {
    "사랑": r"(?<![짝첫])사랑노래|러브송|lovesong|연애노래|연애할때|달달한|커플노래",
    "설렘": r"설레|설렘|썸타|썸탈|썸노래|두근두근|첫눈에",
    "짝사랑": r"짝사랑|외사랑|혼자좋아",
    "이별": r"이별|헤어졌|헤어진|헤어짐|헤어지|차였|전남친|전여친|전애인|전연인|breakup|heartbroken",
    "그리움": r"그리운|그리워|그립|보고싶|보고 싶|missyou|missing",
    "위로/응원": r"위로|응원|힘내|힘이되|토닥|위안|격려|다독|comfort",
    "청춘": r"청춘|젊음|youth",
    "자신감": r"자신감|자존감|당당|걸크|스웩|swag|뿜뿜",
    "분노/저항": r"저항|반항|사이다",
    "우정": r"우정|절친|베프|friendship",
    "가족": r"가족|(?:엄마|아빠|부모님|할머니|할아버지|어머니|아버지)(?:생각|에게|께|한테|를위한|위한|노래|얘기)",
    "추억": r"추억|옛날노래|옛날생각|옛생각|학창시절|그시절|향수|노스탤|nostalgi|회상|레트로",
    "외로움": r"외로|외롭|쓸쓸|고독|lonely|혼술",
    "자유": r"자유|해방|탈출|떠나고싶|freedom",
    "일상": r"일상",
    "파티": r"축하(?:노래|곡|송|하는노래|할때|파티)|생일축하|celebrat",
}.items()}

_ENERGY_UP = re.compile(
    r"신나는|신나게|신날때|신난거|빠른|빠르게|업템포|텐션(?:업|올|높|터지)|흥겨운|흥나는|흥폭발|에너지넘치"
    r"|에너지있|파워풀|강렬한|시끄러운|빵빵한|펌핑|힘나는|힘이나는|힘나게|기운나는|upbeat|hype|energetic"
    r"|fast|pumpup|fun(?![a-z])|템포(?:좀)?(?:올|빠르|높|업)"
)
_ENERGY_DOWN = re.compile(
    r"잔잔|조용한|조용하게|조용히|차분한|차분하게|느린|느리게|천천히|부드러운|나른한|몽환|로파이|lofi"
    r"|chill|calm|quiet|slow|mellow|시끄럽지않|안시끄러운|덜시끄러운|자극적이지않|템포(?:좀)?(?:낮|느리|느린|내려|다운)"
)
# "너무 잔잔하다" complains about calm: it asks for more energy (and the other way round).
_TOO_CALM = re.compile(r"너무(?:잔잔|조용|차분|느리|느린|처지)")
# "너무 신나" alone is a feeling ("시험 끝나서 너무 신나!"); only about the music is it a complaint.
_TOO_LOUD = re.compile(r"너무(?:시끄럽|시끄러|빠르|정신없)"
                       r"|(?:노래|곡|음악|이거|이건|얘)(?:가|는|이|은)?너무신나")
_NOT_THIS = re.compile(r"^.{0,3}?(?:말고|빼고|제외|싫|별로|아닌|않)")

#: A mood asked of the *songs*: the adjective sits right before a music noun ("슬픈 노래").
_MOOD_ADJ: dict[str, str] = {
    "슬픔": r"슬픈|우울한|눈물나는|애절한|구슬픈|처량한|sad",
    "기쁨": r"행복한|밝은|즐거운|기분좋은|경쾌한|상큼한|발랄한|happy",
    "평화": r"평화로운|평온한|편안한|포근한|따뜻한|잔잔하고편안한|peaceful",
    "분노": r"화나는|분노의|화난|빡치는|angry",
    "긴장": r"긴장감있는|긴장되는|무서운|스릴있는|불안한",
    "중립": r"무난한|평범한",
}
_MOOD_NOUN = (r"(?:노래|곡|음악|거|걸|것|분위기|느낌|플리|발라드|힙합|댄스|락|록|인디|알앤비|팝송|트로트"
              r"|songs?|music)")
_MOOD_RX = {m: re.compile(rf"(?:{a}){_MOOD_NOUN}") for m, a in _MOOD_ADJ.items()}

# ---- feelings (for lift, for guards) --------------------------------------------------------
_FEEL: dict[str, re.Pattern[str]] = {k: re.compile(v) for k, v in {
    "슬픔": r"우울|슬퍼|슬프|눈물|울고|울었|울적|서러|서럽|외로|외롭|쓸쓸|허전|공허|힘들|힘든|지쳐|지친"
            r"|속상|괴로|헤어졌|차였|ㅠ|ㅜ|sad|depress|lonely|crying|tired|exhausted|gloomy",
    "분노": r"화나|화가|화난|빡치|빡쳐|짜증|열받|킹받|개빡|어이없|억울|분노|angry|mad|pissed|annoy",
    "긴장": r"불안|초조|걱정|무서|무섭|두려|떨려|떨리|긴장|쫄려|스트레스|stress|nervous|anxious|scared",
    "기쁨": r"행복|기뻐|기쁘|신나|신난|즐거|설레|합격|happy|excited|yay",
}.items()}
_NEGATIVE_MOODS = ("슬픔", "분노", "긴장")
#: Worn out (not heartbroken): the answer leans toward comfort songs (``prefer_themes``).
_WORN_OUT = re.compile(r"지쳐|지친|지치|피곤|힘들|힘든|힘드|고단|번아웃|녹초|기진맥진|탈진|기운없|의욕없"
                       r"|tired|exhausted|burnout|burnedout|worn")
#: Good news said as an event, which the classifier (trained on sentences that name their
#: feeling) misreads: an anniversary, a pass, a promotion, a payday.
_CELEBRATE = re.compile(
    r"\d+일(?:이야|이다|이에요|이네|째|기념)|기념일|\d+주년|생일(?:이야|이다|이에요|이라|축하)"
    r"|합격했|합격함|합격이|붙었|승진|취업했|취직했|졸업했|결혼했|결혼해요|결혼한다|결혼식"
    r"|고백받|고백을받|사귀게|사귀기로|월급(?:들어|날|받)|보너스|상받|상을받|상탔|우승했|우승이"
)
_COUPLE = re.compile(r"여자친구|남자친구|여친|남친|애인|연인|커플|와이프|남편|아내|\d+일|기념일|주년"
                     r"|고백|사귀")
#: A season asked for (on the spaced text: "해봄"/"써봄" are chat for "tried it", not spring).
_SEASON_ASK: dict[str, re.Pattern[str]] = {k: re.compile(v) for k, v in {
    "봄": r"(?:^|\s)봄(?!\s?(?:까|게|래|자|요))|벚꽃|spring",
    "여름": r"여름|summer|바캉스|휴가철|해수욕",
    "가을": r"가을|autumn|낙엽|단풍",
    "겨울": r"겨울|winter|크리스마스|christmas|성탄|첫눈|눈\s?(?:오는|내리는|와)|연말",
}.items()}


def _season(spaced: str) -> str | None:
    return next((k for k, rx in _SEASON_ASK.items() if rx.search(spaced)), None)


#: ... unless the weariness is heartbreak: then the breakup songs are the right match.
_HEARTBROKEN = re.compile(r"헤어|이별|차였|차이고|전남친|전여친|전애인|실연|짝사랑|breakup|heartbr")

# ---- negation of a mood ---------------------------------------------------------------------
_NEG_STEMS: dict[str, str] = {
    "슬픔": r"우울|슬프|슬퍼|힘들|힘드|외로|외롭|속상|괴로|서럽|서러|sad|depressed",
    "분노": r"짜증|빡치|빡쳐|열받|기분나쁘|기분나쁜|기분이나쁘|억울|화나|화가나|angry|mad",
    "긴장": r"무서|무섭|불안|긴장|떨리|떨려|걱정|초조|두렵|두려|쫄리|쫄려|nervous|anxious|scared",
    "기쁨": r"행복|기쁘|기뻐|즐겁|즐거|신나|happy",
    "평화": r"편하|편안|평온|여유",
}
_NEG_RX: dict[str, re.Pattern[str]] = {}
for _m, _s in _NEG_STEMS.items():
    _NEG_RX[_m] = re.compile(
        rf"(?<![불편미치보])(?:안|않|못)(?:{_s})"  # 안 우울해, 안 무서워
        rf"|(?:{_s})(?:하|해|되|돼)?(?:지|진|지는|지도|지가|지를)(?:않|안|마|말)"  # 우울하진 않아, 걱정하지 마
        rf"|(?:{_s})(?:한|은|는|난|운)?(?:건|게|거)(?:아니|아냐|아닌)"  # 화난 건 아니야
        rf"|(?:{_s})(?:은|는|이|가|도)?(?:별로|전혀|하나도|딱히|그렇게|그다지)?(?:안|않)(?:해|돼|되|나|났|남|함|했)"
    )
_NEG_RX["분노"] = re.compile(
    _NEG_RX["분노"].pattern + r"|(?<![영대전통])화(?:는|도)?(?:별로|전혀|하나도)?안(?:나|났|남)"
)
_NEG_RX["기쁨"] = re.compile(_NEG_RX["기쁨"].pattern + r"|안좋(?:아|다|네|음|았|은|아서|더라)")
_NEG_EN = re.compile(
    r"\b(?:not|n't|never)\s+(?:feel(?:ing)?\s+)?(?:that\s+|really\s+|so\s+|too\s+|very\s+)?"
    r"(sad|depressed|happy|angry|mad|nervous|anxious|scared|worried)\b"
)
_EN_MOOD = {"sad": "슬픔", "depressed": "슬픔", "happy": "기쁨", "angry": "분노", "mad": "분노",
            "nervous": "긴장", "anxious": "긴장", "scared": "긴장", "worried": "긴장"}
_RELIEF_AFTER_NEG = re.compile(r"이제|더이상|이젠|다행|편안|편해|해결|놓였|놓여|안심")

# ---- rule cues (see bot.moodrules) ----------------------------------------------------------
_BOREDOM = re.compile(
    r"심심|할게없|할거없|할일없|할일이없|할것도없|할게하나도|지루|따분|무료하|무료한|시간때우|뭐하지|뭐할까"
    r"|멍때|bored|boring|nothingtodo"
)
_PLAIN = re.compile(r"평범|별일없|별일은없|그럭저럭|무난|soso|그저그래|그냥그래|그냥저냥|normalday|justanormal")
_NERVE_EVENT = re.compile(
    r"발표|면접|시험|수능|오디션|무대|프레젠테이션|presentation|공연|대회|결과|소개팅|고백하러|첫출근"
    r"|입사|마감|데드라인|자격증|중간고사|기말고사|모의고사|토익|운전면허|수술|exam|interview"
)
_NERVE_SOON = re.compile(
    r"앞두고|전날|직전|\d+분전|\d+시간전|전이라|전인데|전이야|곧|이따|내일|다음주|코앞|기다리|대기|남았"
    r"|d\d+|디데이|보러가|하러가|가는길|인데|이라|tomorrow"
)
_NERVE_BODY = re.compile(
    r"떨려|떨리|떨린|긴장|초조|조마조마|손이떨|손떨|심장이(?:터질|쿵|두근|벌렁|뛰)|심장쿵|후들|식은땀|쫄려"
    r"|쫄리|안외워|ㄷㄷ|덜덜|nervous|anxious"
)
_NERVE_DONE = re.compile(r"끝났|끝남|끝내|끝나서|붙었|합격했|합격함|통과|망쳤|망했|떨어졌|잘봤|설레|설렌|설렘")
_SARC_MARK = re.compile(r"\^\^|\^_\^|\^\.\^|\^\^;")
_SARC_IDIOM = re.compile(r"퍽이나|잘하는짓|잘났|장하다|경사났|참잘|아주잘|잘돌아")
_SARC_PRAISE = re.compile(
    r"최고|좋다|좋네|좋아|행복하|행복해|신난|신나|감사하|완벽|대박|잘한|잘했|축하|훌륭|멋지|기쁘"
)
_SARC_BAD = re.compile(
    r"야근|주말출근|출근|월요일|과제|숙제|망했|망함|망쳤|차였|차임|잃어버|분실|날아갔|고장|놓침|놓쳤|지각"
    r"|비맞|팀장|부장|상사|과장|잔소리|혼났|깨짐|깨졌|던짐|폭탄|취소|감기|아파|아프|터졌|밀렸|펑크|벌금"
    r"|떨어졌|실수|우산없|회사나오|주말에회사|주말근무|특근|차이고|차여서|차인"
)
_SARC_INTENS = re.compile(r"아주|참|정말|진짜|너무|와|~|ㅎㅎ|하하")
_SARC_SAD = re.compile(r"차였|차임|차이고|차여서|차인|망했|망함|망쳤|떨어졌|취소|감기|아파|아프|혼자|외로")
_RELIEF = re.compile(
    r"다행|안심|마음이놓|마음놓|(?<!불)편안(?!해지|하게해)|(?<![불])편하(?:다|네|고|더라|당|구)|(?<!불)편해(?!지)"
    r"|쾌적|여유롭|여유있|느긋|평온|평화롭|고요하|고요한|고요해|고요히|한가롭|한가하|포근|아늑|상쾌|개운|홀가분"
    r"|후련|살것같|푹쉬|푸욱쉬|쉬는중|휴식중|마음에도휴식"
    r"|선선|릴렉스|relaxed|relaxing|peaceful|calm|chill|cozy|comfy|relieved"
)
_EN_WORDS: dict[str, tuple[str, ...]] = {
    "기쁨": ("happy", "glad", "excited", "great", "awesome", "yay", "thrilled", "joyful", "delighted"),
    "슬픔": ("sad", "depressed", "tired", "exhausted", "drained", "lonely", "heartbroken", "crying",
             "gloomy", "miserable", "blue", "down"),
    "분노": ("angry", "mad", "pissed", "annoyed", "annoying", "furious", "irritated", "fed up"),
    "긴장": ("nervous", "anxious", "stressed", "worried", "scared", "afraid", "terrified", "tense"),
    "평화": ("calm", "relaxed", "relaxing", "chill", "chilling", "peaceful", "cozy", "comfy",
             "relieved", "serene"),
    "중립": ("bored", "boring", "meh", "so so", "so-so", "nothing to do", "normal day"),
}
_EN_RX = {m: re.compile(r"(?<![a-z])(?:" + "|".join(re.escape(w) for w in ws) + r")(?![a-z])")
          for m, ws in _EN_WORDS.items()}
# "blue"/"down" only read as feelings in feeling frames ("feeling down", "down이야", "blue하네").
_EN_WEAK_OK = re.compile(r"(?:feel(?:ing)?|so|kinda|완전|너무|좀|기분)\s*(?:blue|down)|(?:blue|down)\s*(?:이|해|하|함|됨|돼)")
_EN_AS_MUSIC = re.compile(r"^(?:한|하게|한거)?\s*(?:노래|곡|음악|songs?|music|playlist|vibes?|거|걸)")

# ---- lift -----------------------------------------------------------------------------------
_LIFT_JOY = re.compile(
    r"기분전환|기분(?:좀)?(?:좋아지|나아지|풀리|업되|업시|up)|분위기(?:좀)?(?:전환|바꾸|바꿔)"
    r"|우울(?:함|한거|한기분)?(?:좀)?(?:날려|떨쳐|털어|없애)|털어버리|털어내|벗어나고싶|잊게해"
    r"|힘(?:좀)?나게해|기운(?:좀)?차리|cheermeup|cheerup|pickmeup|liftmymood"
    r"|(?:신나는|밝은|신난|행복한)(?:거|걸|것|노래)?(?:로|으로)?바꾸고싶"
)
_LIFT_CALM = re.compile(
    r"진정(?:되|시키|시켜|하고|할)|마음(?:좀)?(?:가라앉|편해지|편안해지|안정|진정)|차분해지고|편안해지고"
    r"|편해지고|안정(?:되는|시켜|시키|찾고)|릴렉스하고|calmmedown|relaxme|화(?:를)?(?:좀)?(?:식히|가라앉)"
)
_ASKS_MUSIC = re.compile(r"노래|곡|음악|추천|틀어|들려|플리|song|music|play|recommend")
_POSITIVE_ASK = re.compile(r"힘나는|힘이나는|밝은|기운나는|기분좋아지")

# ---- intents --------------------------------------------------------------------------------
#: Smalltalk is short; longer text is never matched against the smalltalk patterns.
_SMALLTALK_MAX = 24
_FILLER = re.compile(r"[ㅋㅎㅠㅜㅡ]+|요$|용$|염$|여$|잉$|욤$|님|봇|무드튠|moodtune|bot")
_GREETING = (r"안녕|안녕하세요|안녕하십니까|안뇽|안농|하이|하이요|하이루|ㅎㅇ|hi|hello|hey|heyy|yo|헬로|헬로우"
             r"|반가워|반갑습니다|반가워요|방가|방가방가|좋은아침|굿모닝|goodmorning|좋은저녁|여보세요|저기")
_THANKS = (r"고마워|고마워요|고맙다|고맙습니다|고마웡|감사|감사합니다|감사해요|감사감사|땡큐|땡스|쌩큐|생큐"
           r"|ㄱㅅ|ㄳ|thx|thanks|thankyou|ty|tysm|잘들을게|잘들었어|잘듣고있어")
_ACK = (r"ㅇㅇ|ㅇㅋ|ㅇㅈ|인정|아네|아넵|네네|오키|오케이|ok|okay|okk|알겠어|알았어|알겠습니다|알겠음|알았음|응|웅|엉|어|그래|그래그래"
        r"|넵|네|넹|예|굿|좋아|좋아좋아|아하|오|오오|헐|음|흠|그렇구나|그렇군|ㄱㄱ|ㅇㅋㅇㅋ|ㅇㅇㅇ|cool|sure"
        r"|ㅋ|ㅎ")
_BYE = r"바이|바이바이|bye|byebye|ㅂㅂ|ㅂㅇ|잘있어|안녕히|다음에봐|나중에봐|담에봐|또올게|이만|잘자|굿밤|굿나잇|goodnight|seeya"
_ABOUT = (r"(?:너|넌|니|당신|님|얘|이거)?(?:는|은)?(?:뭐야|뭐니|누구야|누구니|누구세요|누구|정체가?뭐야"
          r"|사람이야|사람이니|사람이에|봇이야|로봇이야|ai야|이름이?뭐야|이름이?뭐니|뭐하는(?:애|봇|거)야?)"
          r"|whoareyou|whatareyou|areyouabot")
_SMALLTALK_RX = {k: re.compile(rf"(?:{v})+") for k, v in
                 (("greeting", _GREETING), ("thanks", _THANKS), ("bye", _BYE), ("about", _ABOUT),
                  ("ack", _ACK))}
_HELP = re.compile(
    r"도움말|사용법|사용방법|사용하는법|쓰는법|어떻게써|어떻게쓰|어케써|어케쓰|어떻게사용|어떻게하면돼|뭐할수있|뭘할수있|무엇을할수"
    r"|할줄알|할수있는게|무슨기능|기능이?뭐|명령어|howtouse|whatcanyoudo|commands"
)
_HELP_WHOLE = re.compile(r"help|도움|도와줘|헬프|\?+|메뉴|menu")
_PRIVACY = re.compile(
    r"(?:정보|기록|데이터|대화내역|히스토리|이력|로그|대화)(?:를|을|좀|다|전부|모두|도)*(?:삭제|지워|지우|없애|초기화|리셋|파기)"
    r"|(?:정보|기록|데이터|대화)(?:가|는|를|도|내용)?(?:저장|수집|보관|남아|남나|남는)|개인정보|탈퇴"
    r"|forgetme|deletemydata|deletemy|forgetabout me|privacy"
)

# ---- thread follow-ups ----------------------------------------------------------------------
_POSITION = re.compile(r"(\d)\s*번(?:째)?|(첫|두|세|네|다섯)\s*번?\s*째|(첫|둘|셋|넷)째|첫\s*(?:곡|노래)|#(\d)")
_ORD = {"첫": 1, "두": 2, "둘": 2, "세": 3, "셋": 3, "네": 4, "넷": 4, "다섯": 5}
_SENTIMENT: tuple[tuple[str, re.Pattern[str]], ...] = (
    (Signal.DISLIKE.value, re.compile(
        r"맘에안들|마음에안들|맘에안드|안땡겨|별로(?!안|않|없|아니)|싫|노잼|구려|구림|별론|그닥|아닌듯|아니야|안좋|최악|이상해|노노|ㄴㄴ|bad|nope|dislike|meh|👎")),
    (Signal.SKIP.value, re.compile(r"이미알|이미아는|아는노래|아는곡|들어봤|들어본|들은거|패스|스킵|skip|넘겨|다음곡|pass")),
    (Signal.LOVE.value, re.compile(r"최고|완전좋|너무좋|진짜좋|대박|인생곡|미쳤|사랑해|짱|띵곡|❤|♥|😍|🥰|love|amazing|perfect")),
    (Signal.LIKE.value, re.compile(r"좋|굿|good|nice|괜찮|맘에들|마음에들|취향|ㄱㅊ|👍|like|great|멋지|cool")),
)
_EMOJI_SIGNALS = "❤♥😍🥰👍👎"
_FEEDBACK_REST = re.compile(
    r"^(?:[ㅋㅎㅠㅜ]|하나도|다|전부|모두|전체|다들|이거|이번꺼|이번거|이노래|노래|노래들|곡|꺼|거|야|요|다|네|이야"
    r"|에요|예요|어|아|고|음|진짜|완전|너무|넘|좀|정말|it|is|was|this|all|so|really|very|ㅇㅇ|ㅇㅋ|오|와|헐|응|웅|넵|네"
    r"|ok|okay|yes|yeah)*$"
)
_OTHER = re.compile(
    r"다른거|다른노래|다른곡|다른걸|다른것|딴거|딴노래|딴곡|다른장르|다른가수|이거말고|이건말고|그거말고|새로운거|새로운노래|다른스타일|또다른|다른건"
    r"|another|other|somethingelse|different|다시추천|재추천|바꿔줘$|바꿔$"
)
_MORE = re.compile(
    r"비슷한(?:거|걸|것|노래|곡)?(?:좀)?더|이런(?:거|걸|것|노래|곡|느낌|스타일)(?:으로|로)?(?:좀)?더|더줘|더추천|더없"
    r"|더보여|더틀어|morelikethis|more(?:pls|please)?$|한번더|또추천|계속"
)
_MORE_WORD = re.compile(r"더|좀더|조금더|훨씬|more|덜|less")
_SWITCH = re.compile(
    r"(?:으로|로|걸로|거로|껄로)(?:바꿔|해줘|해봐|틀어|가자|줘|부탁|ㄱ|들려|추천|$)|바꿔|말고|대신|도$|도(?:있|줘|틀어)"
    r"|(?:은|는)(?:없|어때|\?)|더"
)
_LIKE_POS = re.compile(r"같은|같이|비슷한|비슷하게|느낌|스타일|처럼|류")

# ---- unknown artists ------------------------------------------------------------------------
#: Well-known acts people ask for, each as its spellings. When one spelling is a catalogue name
#: the others become aliases of it ("브루노마스" → "로제 (ROSÉ), Bruno Mars"); otherwise the act is
#: named as ``unknown_artist`` so the bot can say it does not have it instead of ignoring the name.
_KNOWN_ACTS: tuple[tuple[str, ...], ...] = (
    ("콜드플레이", "coldplay"), ("테일러스위프트", "taylorswift"), ("에드시런", "edsheeran"),
    ("아델", "adele"), ("브루노마스", "brunomars"), ("빌리아일리시", "billieeilish"),
    ("아리아나그란데", "arianagrande"), ("비틀즈", "beatles", "thebeatles"), ("퀸", "queen"),
    ("두아리파", "dualipa"), ("위켄드", "더위켄드", "theweeknd", "weeknd"), ("마룬5", "maroon5"),
    ("이매진드래곤스", "imaginedragons"), ("원디렉션", "onedirection"), ("해리스타일스", "harrystyles"),
    ("올리비아로드리고", "oliviarodrigo"), ("요네즈켄시", "yonezukenshi"), ("아이묭", "aimyon"),
    ("요아소비", "yoasobi"), ("히게단", "higedan"), ("라우브", "lauv"), ("샘스미스", "samsmith"),
    ("레이디가가", "ladygaga"), ("케이티페리", "katyperry"), ("리한나", "rihanna"), ("비욘세", "beyonce"),
    ("에미넴", "eminem"), ("드레이크", "drake"), ("포스트말론", "postmalone"),
    ("켄드릭라마", "kendricklamar"), ("시아", "sia"), ("아비치", "avicii"),
    ("체인스모커스", "chainsmokers", "thechainsmokers"), ("오아시스", "oasis"), ("라디오헤드", "radiohead"),
    ("실리카겔", "silicagel"), ("한로로", "hanroro"), ("소녀시대", "girlsgeneration", "snsd"),
    ("에이핑크", "apink"), ("오마이걸", "ohmygirl"), ("아이즈원", "izone"), ("케플러", "kep1er"),
    ("투어스", "tws"), ("라이즈", "riize"), ("보이넥스트도어", "boynextdoor"),
    ("제로베이스원", "zerobaseone", "제베원"), ("베이비몬스터", "babymonster", "베몬"),
    ("키스오브라이프", "kissoflife", "키오프"), ("qwer", "큐더블유이알"), ("이찬원",), ("영탁",),
    ("송가인",), ("장윤정",), ("권진아",), ("최유리",), ("창모", "changmo"), ("저스디스", "justhis"),
    ("이영지",), ("청하", "chungha"), ("선미", "sunmi"), ("현아", "hyuna"), ("화사", "hwasa"),
    ("데이먼스이어", "damonsyear"), ("웨이브투어스", "wavetoearth"), ("너드커넥션", "nerdconnection"),
    ("아일릿", "illit"), ("에이티즈", "ateez"), ("트리플에스", "triples"), ("엔플라잉", "nflying"),
    ("제니", "jennie"), ("리사", "lisa"), ("로제", "rose"), ("동방신기", "tvxq"),
    ("슈퍼주니어", "슈주", "superjunior"), ("소유", "soyou"), ("더보이즈", "theboyz"), ("보아", "boa"),
    ("비", "rain"), ("뷔", "v"), ("하현우",), ("이승환",), ("신승훈",), ("이효리",), ("엄정화",),
)
# Words that end an adjective/verb form: never an artist name ("슬픈 노래", "행복한 노래").
_MODIFIER_END = re.compile(
    r"(?:는|한|운|픈|은|던|된|할|될|을|인|적인|같은|좋은|싶은|들을"  # modifiers: 슬픈, 신나는
    r"|데|해|요|어|아|게|고|서|며|면|지|네|까|니|죠|래|자|줘|봐|중"  # verb endings: 중인데, 심심해
    r"|로|를|도|만|에|랑|과|들|히|가|씩|때|의)$"  # particles and adverbs: 일본으로, 열심히, 슬기가
)
_ASKS_REQUEST = re.compile(r"틀어|추천|들려|있어|있음|있나|있냐|알려|재생|찾아|듣고싶|듣자|줘|play|recommend")
_MODIFIER_SYLLABLES = frozenset("본온간한된난던은는운픈할갈볼올될줄쓸칠잘을진인른싼친찬둔웃긴")
_NOT_NAMES = _words(
    "크리스마스 캐롤 노동요 인스타 유튜브 챌린지 노래방 결혼식 졸업식 뮤지컬 애니메이션 사운드트랙 "
    "플레이리스트 배경음악 브금 요즘 옛날 최신 아무 다른 이런 그런 저런 무슨 어떤 한국 외국 일본 영어 "
    "인기 명곡 띵곡 히트 차트 멜론 여름 겨울 가을 봄 생일 축가 동요 자장가 태교 발라드 아이돌 드라마 "
    "영화 게임 광고 틱톡 오늘 내일 지금 이번 저번 추천 듣기 들을 가사 전주 후렴 노래 음악 신곡 "
    "분위기 감성 느낌 스타일 something songs music song playlist some any more good new old the my "
    "your this that best top play please pls 그냥 아무거나 엄마 아빠 친구 선배 후배 남친 여친 "
    "아기 아이 애들 우리 너 나 저 제 내 그동안 어차피 솔직히 가끔씩 갑자기 어디든 후다닥 진짜 정말 완전 "
    "너무 계속 항상 매일 맨날 요새 아까 방금 이제 다시 또 조용히 새로운 좋아하는"
)


# ---- Hangul helpers (typo distance) ---------------------------------------------------------
def _levenshtein_le1(a: str, b: str) -> bool:
    """True when a and b differ by at most one insertion, deletion or substitution."""
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    if la > lb:
        a, b, la, lb = b, a, lb, la
    i = 0
    while i < la and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


def _is_hangul_or_latin(s: str) -> bool:
    return all("가" <= c <= "힣" or "a" <= c <= "z" for c in s)


def _one_script(s: str) -> bool:
    """All Hangul syllables or all Latin letters: "sns에" is not a misspelt "snsd"."""
    return all("가" <= c <= "힣" for c in s) or all("a" <= c <= "z" for c in s)


# ---- the catalogue side ---------------------------------------------------------------------
_SPLIT_ARTISTS = re.compile(r",\s*|\s+[xX]\s+|\s*\+\s*")
_PAREN = re.compile(r"^(.*?)\s*[(\[](.*)[)\]]\s*$")
_TITLE_PAREN = re.compile(r"\s*[(\[][^)\]]*[)\]]\s*")
_TITLE_TAG = re.compile(r"^(?:feat|ft|prod|with|ver|remix|original|album|inst|live|duet|vocal|bonus|main|sky|piano)", re.I)

#: Extra names for catalogue acts (romanised, Korean reading, nicknames): act name → aliases.
_ALIASES: dict[str, tuple[str, ...]] = {
    "아이유": ("iu", "이지은"),
    "방탄소년단": ("bts", "방탄", "방탄이들", "bangtan", "비티에스", "방탄소년단"),
    "newjeans": ("뉴진스", "뉴진"),
    "aespa": ("에스파",),
    "blackpink": ("블랙핑크", "블핑"),
    "straykids": ("스트레이키즈", "스키즈", "skz"),
    "exo": ("엑소",),
    "gdragon": ("지드래곤", "지디", "권지용"),
    "charlieputh": ("찰리푸스", "찰리푸쓰"),
    "crush": ("크러쉬", "크러시"),
    "ziont": ("자이언티", "zion.t"),
    "10cm": ("십센치", "텐센치", "10센치", "십cm"),
    "2ne1": ("투애니원",),
    "akmu": ("악동뮤지션", "악뮤"),
    "agustd": ("어거스트디", "슈가", "suga", "민윤기"),
    "bmk": ("비엠케이",),
    "cl": ("씨엘",),
    "dean": ("딘",),
    "djdoc": ("디제이디오씨", "디제이덕", "디오씨"),
    "enhypen": ("엔하이픈",),
    "fiftyfifty": ("피프티피프티",),
    "hot": ("에이치오티", "에쵸티"),
    "nct127": ("엔시티127", "엔시티일이칠"),
    "nctdream": ("엔시티드림", "엔드림"),
    "nct도재정": ("도재정",),
    "nmixx": ("엔믹스",),
    "tomorrowxtogether": ("투모로우바이투게더", "투바투", "txt"),
    "vos": ("브이오에스",),
    "ziorpark": ("자이언박", "시온박"),
    "ikon": ("아이콘",),
    "imase": ("이마세",),
    "izi": ("이지",),
    "missa": ("미쓰에이", "미스에이"),
    "theray": ("더레이",),
    "jhope": ("제이홉", "정호석"),
    "jcole": ("제이콜",),
    "thekidlaroi": ("키드라로이", "더키드라로이", "kidlaroi"),
    "justinbieber": ("저스틴비버",),
    "mc몽": ("엠씨몽", "mcmong"),
    "mc스나이퍼": ("엠씨스나이퍼", "mcsniper"),
    "sg워너비": ("에스지워너비", "에스쥐워너비"),
    "taeyang": ("태양",),
    "태양": ("taeyang",),
    "여자아이들": ("여자아이들", "여자 아이들", "아이들", "gidle", "여아이들"),
    "itzy": ("잇지",),
    "day6": ("데식", "데이식스"),
    "ftisland": ("에프티아일랜드", "ft아일랜드"),
    "몬스타엑스": ("monstax", "몬엑"),
    "드림캐쳐": ("드림캐처", "dreamcatcher"),
    "mino": ("미노",),
    "bignaughty": ("빅나티",),
    "다이나믹듀오": ("다듀", "dynamicduo"),
    "사이먼도미닉": ("쌈디", "simond"),
    "박재범": ("jaypark", "제이팍"),
    "브라운아이드소울": ("브아솔",),
    "브라운아이드걸스": ("브아걸",),
    "볼빨간사춘기": ("볼빨간", "볼빨", "볼사"),
    "장기하와얼굴들": ("장기하",),
    "엠씨더맥스": ("엠씨더맥스", "mcthemax", "엠씨더"),
    "tablo": ("타블로",),
    "에픽하이": ("epikhigh", "에픽"),
    "redvelvet": ("레드벨벳",),
    "twice": ("트와이스",),
    "shinee": ("샤이니",),
    "lesserafim": ("르세라핌",),
    "ive": ("아이브",),
    "seventeen": ("세븐틴", "세봉이", "svt"),
    "bigbang": ("빅뱅",),
    "지민": ("jimin", "박지민"),
    "정국": ("jungkook", "전정국"),
    "태연": ("taeyeon", "탱구"),
    "혁오": ("hyukoh",),
    "빈지노": ("beenzino",),
    "윤하": ("younha",),
    "싸이": ("psy",),
    "지코": ("zico",),
}
#: Acts whose name is also an everyday word (or too short to stand alone): they match only
#: before a music noun ("거미 노래", "태양 꺼") — "태양이 뜨겁다" is the sun.
_COMMON_NAMES = _words(
    "안녕 40 거미 거북이 노을 린 팀 얀 제이 이브 모세 에이트 바이브 스카이 패닉 플라워 화이트 지아 주호 "
    "토이 부활 해바라기 동물원 스무살 예민 태양 컬트 뱅크 원투 쿨 브리즈 빅마마 짙은 우효 몽니 뜨거운감자 "
    "자전거탄풍경 여행스케치 빛과소금 봄여름가을겨울 프리스타일 안녕바다 개리 아이들 있지 산이 소란 더클래식 "
    "이지 아이콘 넬 딘 dean nell cool sky toy flower white panic eight vibe bank cult breeze jay eve "
    "freestyle 지수 소유 던 하울 가을방학 안녕하신가영 포스트맨 강산에 왁스 디셈버 적재 이적 이상은 유성은 "
    "이루 솔리드 송골매 산울림 잔나비 노브레인 야다 롤러코스터 치즈 cheeze hot 슈가 suga 에픽 드림 "
    "정인 제이레빗 시인과촌장 빌리어코스티 우디 노라조 범키 테이 영준 정엽 윤상 네미시스 dawn 검정치마 "
    "여자친구 남자친구 비 말로 신화 클론 카라 티아라 god winner v 이안 하진 강진 신유 진성 남진 현철 새소년 "
    "들국화 가호 웅산 보아 화사 정국 선미 제시 리사 로제 rose rain 현빈 말로 퀸 queen 시아 sia 라이즈 "
    "비비 수란 인피니트 소유 알리 펀치 punch "
)


def _name_parts(component: str) -> set[str]:
    """'IVE (아이브)' → {'ive', '아이브'}; '조PD+윤일상' is split by the caller."""
    m = _PAREN.match(component)
    if m and m.group(1).strip():
        return {p for p in (normalise(m.group(1)), normalise(m.group(2))) if p}
    n = normalise(component)
    return {n} if n else set()


def _components(artist: str) -> list[str]:
    out = []
    for c in _SPLIT_ARTISTS.split(artist):
        m = _PAREN.match(c)
        if m and m.group(1).strip() and "+" in m.group(2):  # "PDIS (조PD+윤일상)"
            out.append(m.group(1))
            out.extend(m.group(2).split("+"))
        elif c.strip():
            out.append(c)
    return out


class Lexicon:
    """Artists, titles and aliases from the catalogue, matched Korean-aware.

    An artist alias resolves to every catalogue artist string that credits the act: "아이유" →
    ("HIGH4 (하이포), 아이유", "아이유"); an act's name parts ("IVE (아이브)" → ive, 아이브) are all
    aliases, and acts sharing a name part are one act ("부석순 (SEVENTEEN)" is SEVENTEEN). Titles
    are only seeds: they match before 같은/비슷한/느낌/스타일 or inside quotes, never on their own.
    """

    __slots__ = ("_alias", "_alias_lens", "_ambiguous", "_deletes", "_elsewhere", "_elsewhere_lens",
                 "_song_artist", "_title_lens", "_titles", "_weak_titles")

    def __init__(self, alias: dict[str, tuple[str, ...]], ambiguous: frozenset[str],
                 titles: dict[str, tuple[str, ...]], weak_titles: frozenset[str],
                 song_artist: dict[str, str], elsewhere: frozenset[str]) -> None:
        self._alias = alias
        self._ambiguous = ambiguous
        self._titles = titles
        self._weak_titles = weak_titles
        self._song_artist = song_artist
        self._elsewhere = elsewhere
        self._alias_lens = sorted({len(a) for a in alias}, reverse=True)
        self._title_lens = sorted({len(t) for t in titles}, reverse=True)
        self._elsewhere_lens = sorted({len(a) for a in elsewhere}, reverse=True)
        deletes: dict[str, set[str]] = {}
        for a in alias:
            if len(a) >= 4 and a not in ambiguous and _is_hangul_or_latin(a):
                for i in range(len(a)):
                    deletes.setdefault(a[:i] + a[i + 1:], set()).add(a)
        self._deletes = {k: tuple(sorted(v)) for k, v in deletes.items()}

    @classmethod
    def from_songs(cls, songs: Iterable[tuple[str, str, str]]) -> Lexicon:
        """Build from (song_id, title, artist) triples, e.g. a ``Catalog``'s songs."""
        songs = list(songs)
        song_artist = {sid: artist for sid, _, artist in songs}
        # act components and their name parts
        comp_parts: dict[str, set[str]] = {}
        strings_by_part: dict[str, set[str]] = {}
        for artist in {a for _, _, a in songs if a}:
            for comp in _components(artist):
                parts = _name_parts(comp)
                comp_parts.setdefault(comp, set()).update(parts)
                for p in parts:
                    strings_by_part.setdefault(p, set()).add(artist)

        def resolve(part: str) -> set[str]:
            # one hop: the acts with this part, then every string crediting any of their parts
            linked = {q for c, ps in comp_parts.items() if part in ps for q in ps} or {part}
            return {s for q in linked for s in strings_by_part.get(q, ())}

        alias: dict[str, set[str]] = {}
        for part in strings_by_part:
            alias.setdefault(part, set()).update(resolve(part))
        for act, extra in _ALIASES.items():
            key = normalise(act)
            if key not in strings_by_part:
                continue
            for a in extra:
                alias.setdefault(normalise(a), set()).update(resolve(key))
        titles: dict[str, list[str]] = {}
        for sid, title, _ in songs:
            for key in _title_keys(title):
                titles.setdefault(key, []).append(sid)
        vocab = _vocabulary()
        weak = frozenset(t for t in titles if t in _COMMON_TITLES or t in vocab or t in alias
                         or len(t) <= 1 or (t.isascii() and len(t) <= 2))
        elsewhere: set[str] = set()
        for spellings in _KNOWN_ACTS:
            keys = [normalise(x) for x in spellings]
            known = [k for k in keys if k in strings_by_part]
            if known:  # in the catalogue: every spelling is an alias of it
                for k in keys:
                    alias.setdefault(k, set()).update(resolve(known[0]))
            else:
                elsewhere.update(keys)
        elsewhere -= set(alias)
        ambiguous = frozenset(a for a in alias if len(a) <= 1 or a.isdigit() or a in _COMMON_NAMES)
        weak |= frozenset(t for t in titles if t in alias)
        return cls({k: tuple(sorted(v)) for k, v in alias.items()}, ambiguous,
                   {k: tuple(v) for k, v in titles.items()}, weak, song_artist, frozenset(elsewhere))

    @classmethod
    def from_catalog(cls, catalog: Iterable) -> Lexicon:
        """Build from ``indexing.catalog.Catalog`` (anything yielding songs with id/title/artist)."""
        return cls.from_songs((s.song_id, s.title, s.artist) for s in catalog)

    def artists_for(self, alias: str) -> tuple[str, ...]:
        """Catalogue artist strings an alias resolves to (exact alias, no typo tolerance)."""
        return self._alias.get(normalise(alias), ())

    def artist_of(self, song_id: str) -> str | None:
        return self._song_artist.get(song_id)

    # ---- matching ------------------------------------------------------------------------
    def find_artists(self, t: _Text) -> list[tuple[int, int, tuple[str, ...]]]:
        """(start, end, artist strings) for each artist named, longest match first per word."""
        out: list[tuple[int, int, tuple[str, ...]]] = []
        taken_until = -1
        for s in t.starts:
            if s < taken_until:
                continue
            hit = self._exact_at(t, s) or self._typo_at(t, s)
            if hit:
                out.append(hit)
                taken_until = hit[1]
        return out

    def _accept_end(self, t: _Text, key: str, e: int, s: int) -> bool:
        rest = t.compact[e:]
        if key in self._ambiguous:
            return bool(_MUSIC_NOUN.match(rest)) or t.compact[max(0, s - 2):s] == "가수"
        return t.is_end(e) or bool(_PARTICLE.match(rest))

    def _exact_at(self, t: _Text, s: int) -> tuple[int, int, tuple[str, ...]] | None:
        c = t.compact
        for n in self._alias_lens:
            key = c[s:s + n]
            if len(key) == n and key in self._alias and self._accept_end(t, key, s + n, s):
                return s, s + n, self._alias[key]
        return None

    def _typo_at(self, t: _Text, s: int) -> tuple[int, int, tuple[str, ...]] | None:
        """One edit (or one swap of neighbours) away from a name of ≥ 4 characters.

        The candidate must start like the name and must not be a known word or another name.
        """
        c = t.compact
        vocab = _vocabulary()
        for n in range(min(len(c) - s, 13), 3, -1):
            cand = c[s:s + n]
            if not _one_script(cand) or cand in vocab or cand in self._alias:
                continue  # a name refused as ambiguous is not a typo of another name
            if cand.isascii() and n < 5:
                continue  # short English words ("rain", "love") are too close to too many names
            if not (t.is_end(s + n) or _PARTICLE.match(c[s + n:])):
                continue
            found: set[str] = set()
            found.update(self._deletes.get(cand, ()))  # a letter dropped
            for i in range(n):
                d = cand[:i] + cand[i + 1:]
                if d in self._alias and len(d) >= 4 and d not in self._ambiguous:
                    found.add(d)  # a letter added
                found.update(self._deletes.get(d, ()))  # a letter changed
            found = {a for a in found if _levenshtein_le1(a, cand)}
            for i in range(n - 1):  # two neighbours swapped ("blackpnik")
                w = cand[:i] + cand[i + 1] + cand[i] + cand[i + 2:]
                if w != cand and w in self._alias and len(w) >= 4 and w not in self._ambiguous:
                    found.add(w)
            # people get the first syllable right; "남자친구" is not a typo of "여자친구"
            found = {a for a in found if a[0] == cand[0]}
            if len(found) == 1:
                a = found.pop()
                return s, s + n, self._alias[a]
        return None

    def find_seed(self, t: _Text, quoted: list[str],
                  artists: list[tuple[int, int, tuple[str, ...]]]) -> tuple[str, int, int] | None:
        """(song_id, start, end) of a title used as a seed ("밤편지 같은", "'좋니'", "like Ditto")."""
        for q in quoted:
            key = normalise(q)
            if key in self._titles:
                return self._pick(self._titles[key], artists), -1, -1
        c = t.compact
        for s in t.starts:
            for n in self._title_lens:
                key = c[s:s + n]
                if len(key) != n or key not in self._titles:
                    continue
                after = _LIKE_AFTER.match(c[s + n:])
                before = c[:s].endswith(("like", "similarto"))  # "songs like Ditto"
                qualified = any(e == s for _, e, _ in artists)
                if not (after or before):
                    continue
                if key in self._weak_titles and not qualified:
                    continue
                return self._pick(self._titles[key], artists), s, s + n
        return None

    def _pick(self, ids: tuple[str, ...], artists: list[tuple[int, int, tuple[str, ...]]]) -> str:
        named = {a for _, _, strs in artists for a in strs}
        for sid in ids:
            if self._song_artist.get(sid) in named:
                return sid
        return ids[0]

    def known_title(self, key: str) -> bool:
        return key in self._titles

    def find_elsewhere(self, t: _Text) -> tuple[int, int] | None:
        c = t.compact
        for s in t.starts:
            for n in self._elsewhere_lens:
                key = c[s:s + n]
                if len(key) == n and key in self._elsewhere and (
                        t.is_end(s + n) or _PARTICLE.match(c[s + n:])):
                    if len(key) <= 2 and not _MUSIC_NOUN.match(c[s + n:]):
                        continue
                    return s, s + n
        return None


_COMMON_TITLES = frozenset(normalise(w) for w in _words(
    "사랑 마음 숨 시작 눈물 청소 한숨 좋다 영원 바보 나무 출발 거울 눈 꽃 연 왜 넋 심 감사 먼지 물론 바래 "
    "삭제 무지개 아버지 고백 첫사랑 짝사랑 장마 일어나 다행이다 신호등 카레 짬뽕 소녀 오빠야 라라라 아로하 "
    "세글자 경고 외톨이 회상 아프다 어깨 청혼 사계 너에게 너를 미워요 점점 가끔 그냥 취향저격 happy hot "
    "fire rain stay on home error candy monster drama danger psycho zombie obsession run love "
    "happiness beautiful romance rose galaxy endless timeless maria bounce sofa knock allergy attention "
    "nostalgia perfume cupid thirsty monologue goodnight onelove mystory kitsch iam eleven hit "
    "badboy criminal scream 좋은사람 꿈에 발걸음 기억상실 잊었니 혜성 서시 천둥 은인 형 연애편지 무릎 "
    "고등어 유자차 풍경 어느새 언젠가는 마법의성 독 화 마리아"
))


def _title_keys(title: str) -> set[str]:
    """'너의 의미 (Feat. 김창완)' → {'너의의미'}; '퀸카 (Queencard)' → {'퀸카', 'queencard'}."""
    keys = {normalise(title), normalise(_TITLE_PAREN.sub(" ", title))}
    for inner in re.findall(r"[(\[]([^)\]]*)[)\]]", title):
        if not _TITLE_TAG.match(inner.strip()) and not inner.strip().isdigit():
            keys.add(normalise(inner))
    return {k for k in keys if k}


_VOCAB: frozenset[str] | None = None


def _vocabulary() -> frozenset[str]:
    """Words that are requests, not names: genre, situation and theme words and everyday nouns."""
    global _VOCAB
    if _VOCAB is None:
        words = set(_NOT_NAMES)
        for ws in _GENRE_WORDS.values():
            words.update(ws)
        words.update(normalise(g) for g in GENRES)
        words.update(normalise(s) for s in SITUATIONS)
        words.update(normalise(t) for t in THEMES)
        words.update(normalise(m) for m in LABELS)
        words.update(_words("러닝 헬스 운동 드라이브 새벽 카페 공부 여행 산책 출근 퇴근 파티 힐링 휴식 "
                            "이별 위로 응원 설렘 추억 우정 청춘 사랑노래 신나는 잔잔한 조용한 우울한 "
                            "슬픈 행복한 밝은 기분전환 노동요 발라드 트로트"))
        _VOCAB = frozenset(words)
    return _VOCAB


# ---- the matchers ---------------------------------------------------------------------------
_GENRE_TABLE: dict[str, str] = {w: g for g, ws in _GENRE_WORDS.items() for w in ws}
_GENRE_LENS = sorted({len(w) for w in _GENRE_TABLE}, reverse=True)
_GENRE_AFTER = re.compile(
    r"(?:노래|음악|곡|장르|으로|로|쪽|계열|풍|느낌|스타일|감성|위주|이나|나|이랑|랑|도|만|은|는|이|가|을|를"
    r"|말고|빼고|좀|들|플리|추천|틀어|듣|같은|류|의|하고|위주|songs?|music)"
)


def _find_genres(t: _Text, masked: list[tuple[int, int]]
                 ) -> tuple[list[str], list[str], list[tuple[int, int]]]:
    """Genres asked for, genres refused ("발라드 말고"), and the spans they came from."""
    c = t.compact
    want: list[str] = []
    refuse: list[str] = []
    spans: list[tuple[int, int]] = []
    for s in t.starts:
        if any(ms <= s < me for ms, me in masked):
            continue
        for n in _GENRE_LENS:
            w = c[s:s + n]
            if len(w) != n or w not in _GENRE_TABLE:
                continue
            e = s + n
            if n <= _GENRE_SHORT and not (t.is_end(e) or _GENRE_AFTER.match(c[e:])):
                continue
            g = _GENRE_TABLE[w]
            target = refuse if _NOT_THIS.match(c[e:]) and not c[e:].startswith(("별로안", "별로않")) else want
            if g not in target:
                target.append(g)
            spans.append((s, e))
            break
    return [g for g in want if g not in refuse], refuse, spans


def _mask(t: _Text, spans: list[tuple[int, int]]) -> tuple[str, str]:
    """The compact and spaced text with the given compact spans blanked out ("_")."""
    if not spans:
        return t.compact, " ".join(t.folded.split())
    c = list(t.compact)
    f = list(t.folded)
    for s, e in spans:
        for k in range(max(0, s), min(e, len(c))):
            c[k] = "_"
            f[t.surface[k]] = "_"
    return "".join(c), " ".join("".join(f).split())


def _energy(c: str) -> str | None:
    best: tuple[int, str] | None = None
    for rx, val, flip in ((_ENERGY_UP, "up", "down"), (_ENERGY_DOWN, "down", "up")):
        for m in rx.finditer(c):
            v = flip if _NOT_THIS.match(c[m.end():]) else val
            if best is None or m.start() >= best[0]:
                best = (m.start(), v)
    for rx, val in ((_TOO_CALM, "up"), (_TOO_LOUD, "down")):
        m = rx.search(c)
        if m and (best is None or best[0] <= m.end()):
            # "너무 잔잔하다 좀 더 빠르게": the complaint only decides when nothing follows it
            later = best is not None and best[0] > m.end()
            if not later:
                best = (m.start(), val)
    return best[1] if best else None


def _requested_mood(c: str) -> str | None:
    hits = [(m.start(), mood) for mood, rx in _MOOD_RX.items() for m in rx.finditer(c)]
    return min(hits)[1] if hits else None


def _negated(c: str, spaced: str) -> tuple[str | None, list[tuple[int, int]]]:
    hits = [(m.start(), m.end(), mood) for mood, rx in _NEG_RX.items() for m in rx.finditer(c)]
    m = _NEG_EN.search(spaced)
    if not hits and m:
        return _EN_MOOD[m.group(1)], []
    if not hits:
        return None, []
    hits.sort()
    return hits[0][2], [(s, e) for s, e, _ in hits]


def _feelings(c: str, skip: list[tuple[int, int]]) -> set[str]:
    """Moods the writer says they feel (negated spans and song descriptors left out)."""
    out = set()
    for mood, rx in _FEEL.items():
        for m in rx.finditer(c):
            if any(s <= m.start() < e for s, e in skip):
                continue
            if _EN_AS_MUSIC.match(c[m.end():]) and mood != "슬픔":
                continue
            out.add(mood)
    return out


def _english_mood(spaced: str, compact: str) -> str | None:
    votes: dict[str, int] = {}
    for mood, rx in _EN_RX.items():
        for m in rx.finditer(spaced):
            if _EN_AS_MUSIC.match(spaced[m.end():].lstrip()):
                continue
            if m.group(0) in ("blue", "down") and not _EN_WEAK_OK.search(spaced):
                continue
            votes[mood] = votes.get(mood, 0) + 1
    if not votes:
        return None
    return max(votes, key=lambda k: votes[k])


def _sarcasm(raw: str, c: str) -> str | None:
    """The negative mood behind praise said through gritted teeth, else None."""
    bad = _SARC_BAD.search(c)
    marked = bool(_SARC_MARK.search(raw))
    idiom = bool(_SARC_IDIOM.search(c)) or "잘~" in raw or "아~주" in raw
    praise = _SARC_PRAISE.search(c)
    if not ((marked and bad) or (idiom and (bad or praise or marked)) or c.startswith("퍽이나")
            or (praise and bad and (_SARC_INTENS.search(raw) or marked))):
        return None
    return "슬픔" if _SARC_SAD.search(c) else "분노"


def _nerves(c: str, neg_spans: list[tuple[int, int]]) -> bool:
    if _NERVE_DONE.search(c):
        return False
    if any(not any(s <= m.start() < e for s, e in neg_spans) for m in _NERVE_BODY.finditer(c)):
        return True  # a body cue that is not negated ("안 떨려" is not nerves)
    ev = _NERVE_EVENT.search(c)
    return bool(ev and _NERVE_SOON.search(c))


def _relief(c: str, neg_spans: list[tuple[int, int]]) -> bool:
    for m in _RELIEF.finditer(c):
        if any(s <= m.start() < e for s, e in neg_spans):
            continue
        rest = c[m.end():]
        if _EN_AS_MUSIC.match(rest) or re.match(r"(?:하|해|한|하지|하진)?(?:지않|진않|지가않|않|없)", rest):
            continue
        if c[max(0, m.start() - 1):m.start()] == "안":
            continue
        return True
    return False


def _position(spaced: str) -> int | None:
    m = _POSITION.search(spaced)
    if not m:
        return None
    if m.group(1):
        return int(m.group(1))
    if m.group(4):
        return int(m.group(4))
    word = m.group(2) or m.group(3)
    return _ORD.get(word, 1)


def _sentiment(c: str) -> str | None:
    """The first verdict in the text ("1번 별로고 나머진 좋아" → dislike)."""
    hits = []
    for rank, (sig, rx) in enumerate(_SENTIMENT):
        m = rx.search(c)
        if m:
            hits.append((m.start(), rank, sig))
    return min(hits)[2] if hits else None


def _quoted(text: str) -> list[str]:
    return [a or b or c or d for a, b, c, d in re.findall(
        r"'([^']{2,40})'|\"([^\"]{2,40})\"|[「『“‘《<]([^」』”’》>]{2,40})[」』”’》>]|`([^`]{2,40})`", text)]


def _smalltalk(c: str) -> str | None:
    if len(c) > _SMALLTALK_MAX:
        return None
    if re.fullmatch(r"[ㅠㅜ]+", c):
        return None  # "ㅠㅠ" is a feeling, not an acknowledgement
    for kind, rx in _SMALLTALK_RX.items():
        if rx.fullmatch(c):
            return kind
    core = _FILLER.sub("", c)
    if not core:
        return "ack" if c else None
    for kind, rx in _SMALLTALK_RX.items():
        if rx.fullmatch(core):
            return kind
    # several pieces in a row ("안녕 반가워", "ㅇㅋ 고마워", "ㅇㅇ 알겠어 ㅂㅂ"): smalltalk when the
    # pieces cover the whole message (before or after dropping fillers, which would split
    # "ㅇㅋ"); the most telling kind names it.
    return _smalltalk_chain(c) or _smalltalk_chain(core)


def _smalltalk_chain(text: str) -> str | None:
    kinds: set[str] = set()
    rest = text
    while rest:
        best = max(((k, m.end()) for k, rx in _SMALLTALK_RX.items() if (m := rx.match(rest))),
                   key=lambda km: km[1], default=None)
        if best is None or best[1] == 0:
            return None
        kinds.add(best[0])
        rest = rest[best[1]:]
    return next((k for k in ("thanks", "bye", "greeting", "about", "ack") if k in kinds), None)


def understand(text: str, lexicon: Lexicon, *, has_thread: bool = False) -> Request:
    """Read one chat message: intent and slots, by rules, in well under a millisecond.

    ``has_thread`` says the user has a previous answer with tracks: only then can "2번 좋다" be
    feedback and "더 신나게" a refinement of it; without one they are read as new requests.
    """
    raw = INVISIBLE.sub("", unicodedata.normalize("NFC", clean_text(text))).strip()
    raw = re.sub(r"\s+", " ", raw)
    full = raw
    raw = raw[:_MAX_READ]  # a request is short; a pasted essay is read by the classifier only
    if not raw:
        return Request(intent="help", text="")
    cmd = re.match(r"^/([\w-]+)\s*(.*)$", raw)
    if cmd:
        name, rest = cmd.group(1).lower(), cmd.group(2)
        if name in ("help", "도움말", "start", "시작"):
            return Request(intent="help", text=full)
        if name in ("forget-me", "forgetme", "forget", "privacy", "delete"):
            return Request(intent="privacy", text=full)
        if name in ("mood", "기분"):
            m = parse_emotion(rest) if rest else None
            if m is not None:
                return Request(intent="recommend", mood=LABELS[m], text=rest)
        raw = rest[:_MAX_READ] if rest else raw
        full = rest or full
    t = _Text(raw)
    c = t.compact
    spaced = " ".join(t.folded.split())

    if _PRIVACY.search(c) or re.search(r"delete my|forget me|forget-me", spaced):
        return Request(intent="privacy", text=full)

    # ---- slots --------------------------------------------------------------------------
    artists_found = lexicon.find_artists(t)
    seed = lexicon.find_seed(t, _quoted(raw), artists_found)
    like_song = seed[0] if seed else None
    seed_span = (seed[1], seed[2]) if seed else (-1, -1)
    # names and the seed title are masked before the word matchers run: "Hype boy" is not a
    # request for energy, "태양" in "GD X TAEYANG" is not the weather
    spans = [(s, e) for s, e, _ in artists_found]
    if seed and seed[1] < 0:
        k = next((normalise(q) for q in _quoted(raw) if normalise(q) in c), "")
        if k:
            spans.append((c.find(k), c.find(k) + len(k)))
    elif seed:
        spans.append((seed[1], seed[2]))
    m_c, m_spaced = _mask(t, spans)
    genres, refused, genre_spans = _find_genres(t, spans)
    artists: list[str] = []
    exclude_artists: list[str] = []
    for s, e, strs in artists_found:
        if seed and seed_span[0] >= 0 and (s < seed_span[1] and e > seed_span[0]):
            continue  # the name is (part of) the seed title
        if like_song and e == seed_span[0] and lexicon.artist_of(like_song) in strs:
            continue  # "아이유 밤편지 같은": the artist only says which 밤편지
        if any(gs <= s < ge for gs, ge in genre_spans):
            continue
        target = exclude_artists if _NOT_THIS.match(c[e:]) else artists
        target.extend(a for a in strs if a not in target)
    unknown = None
    if not artists_found:
        span = lexicon.find_elsewhere(t)
        unknown = t.span(*span) if span else _guess_unknown_artist(t, lexicon)
    situations = [k for k, rx in _SITUATION_RX.items() if rx.search(m_c)]
    themes = [k for k, rx in _THEME_RX.items() if rx.search(m_c)]
    if "짝사랑" in themes and "사랑" in themes:
        themes.remove("사랑")
    energy = _energy(m_c)
    mood = _requested_mood(m_c)
    if mood is None and len(raw) <= 12:
        m = parse_emotion(raw)
        if m is not None and LABELS[m] != "중립":
            mood = LABELS[m]

    negated, neg_spans = _negated(m_c, m_spaced)
    feelings = _feelings(m_c, neg_spans)
    cues: list[str] = []
    hint: str | None = None
    if negated:
        cues.append("negation")
    sarcastic = _sarcasm(raw, m_c)
    english = _english_mood(m_spaced, m_c)
    if sarcastic:
        cues.append("sarcasm")
        hint = sarcastic
    elif _CELEBRATE.search(m_c) and not (feelings & set(_NEGATIVE_MOODS)) and negated != "기쁨":
        cues.append("celebration")  # "여자친구랑 100일이야!" read as 긴장 0.78 by the classifier
        hint = "기쁨"
    elif _nerves(m_c, neg_spans):
        cues.append("nerves")
        hint = "긴장"
    elif _BOREDOM.search(m_c) and not (feelings - {"기쁨"}) - {negated}:
        cues.append("boredom")
        hint = "중립"
    elif _PLAIN.search(m_c) and not feelings - {negated}:
        cues.append("plain")  # "그냥 평범한 하루": nothing to feel, not a hidden sadness
        hint = "중립"
    elif english and (english != "평화" or not mood) and english != mood:
        cues.append("english")
        hint = english
    elif (_relief(m_c, neg_spans) and not (feelings & set(_NEGATIVE_MOODS)) and mood is None) or (
            negated in _NEGATIVE_MOODS and _RELIEF_AFTER_NEG.search(m_c)):
        cues.append("relief")  # "다행이다"; "이제 안 무서워" (not afraid any more: relieved)
        hint = "평화"
    if english and "english" not in cues and hint == english:
        cues.append("english")

    strategy, target = "match", None
    if _LIFT_CALM.search(m_c):
        strategy, target = "lift", "평화"
    elif _LIFT_JOY.search(m_c):
        strategy, target = "lift", "기쁨"
    else:
        negative = (feelings & set(_NEGATIVE_MOODS)) or (hint in _NEGATIVE_MOODS)
        if negative and (energy == "up" or mood == "기쁨" or _POSITIVE_ASK.search(m_c)):
            strategy, target = "lift", "기쁨"
        elif negative and (feelings & {"분노", "긴장"} or hint in ("분노", "긴장")) and (
                mood == "평화"):
            strategy, target = "lift", "평화"
    if "기분전환" in m_c and "기분전환" not in situations:
        situations.insert(0, "기분전환")
    prefer: tuple[str, ...] = ()
    if not themes and "celebration" in cues and _COUPLE.search(m_c):
        prefer = ("사랑", "설렘")  # an anniversary or a confession: love songs, happy ones
    elif (not themes and negated != "슬픔" and _WORN_OUT.search(m_c)
            and not _HEARTBROKEN.search(m_c)):
        # "오늘 너무 지치고 우울해": a mood match alone answers with breakup ballads (the
        # catalogue's sad songs are mostly about a breakup). Worn out is not heartbroken: lean
        # toward comfort. Any theme said outright ("이별 노래", "헤어져서 힘들어") wins.
        prefer = ("위로/응원",)
        cues.append("comfort")

    base = dict(
        genres=tuple(genres), artists=tuple(artists), unknown_artist=unknown,
        situations=tuple(situations), themes=tuple(themes), energy=energy, like_song=like_song,
        mood=mood, strategy=strategy, target_mood=target, negated_mood=negated, mood_hint=hint,
        exclude_genres=tuple(refused), exclude_artists=tuple(exclude_artists),
        prefer_themes=prefer, season=_season(m_spaced), cues=tuple(cues), text=full,
    )
    has_slots = bool(genres or artists or unknown or situations or themes or energy or like_song
                     or mood or refused or exclude_artists)

    # ---- intents ------------------------------------------------------------------------
    if _HELP.search(c) and not has_slots and not feelings:
        return Request(intent="help", text=full)
    if _HELP_WHOLE.fullmatch(_FILLER.sub("", c)) and _FILLER.sub("", c):
        return Request(intent="help", text=full)

    if has_thread:
        follow = _follow_up(t, spaced, base, has_slots, feelings)
        if follow is not None:
            return follow

    if not c and raw and all(ch in _EMOJI_SIGNALS or ch.isspace() or ch in "\ufe0f" for ch in raw):
        return Request(intent="smalltalk", smalltalk="ack", text=full)  # a lone 👍 with nothing to rate
    if not has_slots and not negated:
        kind = _smalltalk(c)
        if kind:
            return Request(intent="smalltalk", smalltalk=kind, text=full)
        thanks = _SMALLTALK_RX["thanks"].match(c)
        if thanks and not feelings & set(_NEGATIVE_MOODS) and hint is None and not _ASKS_MUSIC.search(c):
            return Request(intent="smalltalk", smalltalk="thanks", text=full)  # "고마워 덕분에 …"
    return Request(intent="recommend", **base)


def _follow_up(t: _Text, spaced: str, base: dict, has_slots: bool,
               feelings: set[str]) -> Request | None:
    """A refinement of, or feedback on, the previous answer; None when it is a new request."""
    c = t.compact
    position = _position(spaced)
    c_rest = _POSITION.sub("", spaced)
    c_rest = "".join(_TOKEN.findall(c_rest)) + "".join(ch for ch in base["text"] if ch in _EMOJI_SIGNALS)
    signal = _sentiment(c_rest)
    raw = base["text"]

    refinement: str | None = None
    if position is not None and _LIKE_POS.search(c_rest):
        refinement = "like_position"
    elif has_slots or _MORE_WORD.search(c) or _OTHER.search(c) or _MORE.search(c):
        switch = bool(_SWITCH.search(c)) or len(c) <= 8
        more_word = bool(_MORE_WORD.search(c))
        too = _TOO_CALM.search(c) or _TOO_LOUD.search(c)
        if base["genres"] and switch:
            refinement = "genre"
        elif base["artists"] and switch:
            refinement = "artist"
        elif base["energy"] and (more_word or switch or too):
            refinement = "more_energy" if base["energy"] == "up" else "calmer"
        elif base["mood"] and (more_word or switch):
            refinement = "mood"
        elif base["situations"] and (switch or more_word) and len(c) <= 14:
            refinement = "situation"
        elif base["themes"] and (switch or more_word) and len(c) <= 14:
            refinement = "theme"
        elif _OTHER.search(c) or (base["exclude_genres"] or base["exclude_artists"]):
            refinement = "other"
        elif _MORE.search(c):
            refinement = "more"
    if refinement is None and signal == Signal.DISLIKE.value and not has_slots and _OTHER.search(c):
        refinement = "other"
    if refinement is not None:
        if feelings - {"기쁨"} and len(c) > 20 and refinement not in ("like_position",):
            return None  # a new feeling and a long message: a fresh request
        fields_ = dict(base)
        fields_.update(refinement=refinement, position=position,
                       signal=signal if (signal and position is not None) or
                       (signal == Signal.DISLIKE.value and refinement == "other") else None)
        if refinement == "like_position":
            fields_["signal"] = signal if signal in (Signal.LIKE.value, Signal.LOVE.value) else None
        return Request(intent="refine", **fields_)

    if signal is None or has_slots:
        return None
    if position is None:
        rest = _strip_sentiment(c_rest)
        if len(c) > 16 or not _FEEDBACK_REST.match(rest):
            return None
    return Request(intent="feedback", signal=signal, position=position, text=raw)


_SENT_WORDS = re.compile(
    r"맘에안들(?:어|어요|음)?|마음에안들(?:어|어요|음)?|안땡겨|별로(?:야|예요|에요|인데|임|네|다)?|별론데|싫어?(?:요|다|음)?|노잼|구려|구림|그닥|아닌듯|안좋아?|최악|이상해"
    r"|노노|ㄴㄴ|bad|nope|dislike|meh|이미알|이미아는|아는노래|아는곡|들어봤|들어본|들은거|패스|스킵|skip|넘겨|다음곡"
    r"|최고(?:야|다|네|예요|에요|임)?|완전좋|너무좋|진짜좋|대박|인생곡|미쳤(?:다|네|어)?|사랑해|짱|띵곡|love|amazing"
    r"|perfect|좋(?:아|다|네|음|아요|네요|습니다|은데|았어|더라)?|굿|good|nice|괜찮(?:아|다|네|은데)?|맘에들(?:어|어요)?"
    r"|마음에들(?:어|어요)?|취향(?:저격|이야|임)?|ㄱㅊ|like|great|멋지(?:다|네)?|cool|[❤♥😍🥰👍👎]"
)


def _strip_sentiment(c: str) -> str:
    return _SENT_WORDS.sub("", c)


def _guess_unknown_artist(t: _Text, lexicon: Lexicon) -> str | None:
    """A name-looking word right before 노래/곡 in a request that nothing else explains
    ("쏜애플 노래 틀어줘"). Precision first: a wrong guess makes the bot say it lacks an artist."""
    c = t.compact
    if not _ASKS_REQUEST.search(c) and "?" not in t.folded:
        return None
    vocab = _vocabulary()
    for i, s in enumerate(t.starts):
        e = t.starts[i + 1] if i + 1 < len(t.starts) else len(c)
        word = c[s:e]
        nxt = c[e:]
        m = re.match(r"(?:의)?(?:노래(?!방)|곡(?![면성선])|신곡|앨범|꺼(?![져지짐서내]))", nxt)
        if not m:
            # the name and the noun written together: "너드커넥션노래"
            m2 = re.match(r"(.+?)(?:의)?(?:노래|신곡|앨범)", word)
            if not m2:
                continue
            word = m2.group(1)
        if len(word) < 3 or word in vocab or lexicon.known_title(word) or "번째" in word:
            continue
        if word[-1] in _MODIFIER_SYLLABLES:
            continue  # "들어본", "좋아할": a modifier, not a name
        if not (_is_hangul_or_latin(word)) or _MODIFIER_END.search(word):
            continue
        if word.isascii() and len(word) < 4:
            continue
        if any(rx.search(word) for rx in (*_SITUATION_RX.values(), *_THEME_RX.values(),
                                          _ENERGY_UP, _ENERGY_DOWN, *_FEEL.values())):
            continue
        if any(word.startswith(g) or word.endswith(g) for g in _GENRE_TABLE if len(g) >= 2):
            continue
        return t.span(s, s + len(word))
    return None
