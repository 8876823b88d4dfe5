import pytest

from inference.emotions import (
    EMOTIONS,
    LABELS,
    LABELS_EN,
    NUM_EMOTIONS,
    UnknownEmotionError,
    index_of,
    parse_emotion,
)


def test_design_order():
    assert LABELS == ("분노", "긴장", "슬픔", "평화", "기쁨", "중립")
    assert LABELS_EN == ("anger", "tension", "sadness", "peace", "joy", "neutral")
    assert NUM_EMOTIONS == 6
    assert [e.index for e in EMOTIONS] == list(range(6))
    assert len({e.emoji for e in EMOTIONS}) == 6


@pytest.mark.parametrize(("name", "label"), [
    ("슬픔", "슬픔"), ("sadness", "슬픔"), ("SAD", "슬픔"), ("😢", "슬픔"), (" 평화 ", "평화"),
    ("calm", "평화"), ("행복", "기쁨"), ("공포", "긴장"), ("혐오", "분노"), ("/중립", "중립"),
])
def test_index_of_aliases(name, label):
    assert LABELS[index_of(name)] == label


def test_unknown_emotion_message_lists_choices():
    with pytest.raises(UnknownEmotionError, match="분노 \\(anger\\)"):
        index_of("배고픔")


@pytest.mark.parametrize(("text", "label"), [
    ("슬픔", "슬픔"), ("mood 평화", "평화"), ("/mood 평화", "평화"), ("기쁨!", "기쁨"), ("calm", "평화"),
])
def test_parse_emotion_explicit(text, label):
    assert LABELS[parse_emotion(text)] == label


@pytest.mark.parametrize("text", ["", "   ", "오늘 너무 슬픔이 밀려와서 힘들어", "안녕", "😀😀"])
def test_parse_emotion_none_for_sentences(text):
    assert parse_emotion(text) is None
