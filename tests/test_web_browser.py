"""The web chat page in a real headless Chromium against the real server (issue 13).

One server per module (``bot.server.create_app`` on the shipped model and catalogue, temp
DATA_DIR, 127.0.0.1, a free port); a fresh browser per test, so each test is a new anonymous
session (a new user to the engine). Helpers live in ``tests/web_browser.py``. Skips, with the
reason, where Debian's chromium/chromedriver are not installed (CI installs them: ``.ci/run``).
Screenshots of each run land in ``benchmarks/results/screenshots/`` (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests import web_browser as wb

pytestmark = [pytest.mark.slow, pytest.mark.browser]

_REASON = wb.browser_unavailable()
if _REASON:
    pytest.skip(f"browser tests skipped: {_REASON}", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

SHOTS = wb.SCREENSHOT_DIR


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[wb.LiveServer]:
    wb.ignore_dir(SHOTS)
    with wb.live_server(tmp_path_factory.mktemp("web-data")) as srv:
        yield srv


@pytest.fixture
def driver() -> Iterator[Any]:
    with wb.browser(wb.DESKTOP) as d:
        yield d


@pytest.fixture
def chat(driver: Any, server: wb.LiveServer) -> Any:
    wb.open_chat(driver, server.url)
    return driver


def by_label(root: Any, label: str) -> Any:
    return root.find_element(By.CSS_SELECTOR, f'[aria-label="{label}"]')


def active(driver: Any) -> Any:
    return driver.switch_to.active_element


def severe_console_errors(driver: Any) -> list[str]:
    """Console errors (a CSP violation, a script error, a failed request) on the page."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def rec_id_of(row: Any) -> str:
    rec_id = row.find_element(By.CSS_SELECTOR, "article.answer").get_attribute("data-rec-id")
    assert rec_id, "the answer carries no rec_id"
    return rec_id


# ---- the page ----------------------------------------------------------------------------
def test_message_shows_mood_and_five_cards(chat: Any, server: wb.LiveServer) -> None:
    d = chat
    assert d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ko"
    thread = d.find_element(By.ID, "thread")
    assert thread.get_attribute("aria-live") == "polite"
    assert d.find_elements(By.TAG_NAME, "header") and d.find_elements(By.TAG_NAME, "main")
    row = wb.send_message(d, "시험 끝나서 신나는 노래 듣고 싶어")

    cards = wb.cards(row)
    assert len(cards) == 5
    for i, card in enumerate(cards, start=1):
        assert card.find_element(By.CSS_SELECTOR, ".card-title-text").text.strip()
        assert card.find_element(By.CSS_SELECTOR, ".card-artist").text.strip()
        assert card.find_element(By.CSS_SELECTOR, ".card-reason").text.strip()
        link = card.find_element(By.CSS_SELECTOR, "a.card-link")
        assert link.get_attribute("href").startswith(("https://", "http://"))
        assert link.get_attribute("target") == "_blank"
        assert set(link.get_attribute("rel").split()) >= {"noopener", "noreferrer"}
        like = by_label(card, f"{i}번 곡 좋아요")
        assert like.get_attribute("aria-pressed") == "false"
        by_label(card, f"{i}번 곡 싫어요")

    bars = row.find_elements(By.CSS_SELECTOR, ".mood-bar")
    labels = [b.find_element(By.CSS_SELECTOR, ".mood-label").text for b in bars]
    assert labels == ["분노", "긴장", "슬픔", "평화", "기쁨", "중립"]
    pcts = [int(b.find_element(By.CSS_SELECTOR, ".mood-pct").text.rstrip("%")) for b in bars]
    assert all(0 <= p <= 100 for p in pcts) and 90 <= sum(pcts) <= 110

    # chat-like scrolling: the newest answer is in view inside the thread
    assert d.execute_script(
        "const t = document.getElementById('thread'), r = arguments[0].getBoundingClientRect(),"
        " b = t.getBoundingClientRect(); return r.top < b.bottom && r.bottom > b.top;", row)
    # refinement chips come alive once there is an answer to refine
    assert all(c.is_enabled() for c in d.find_elements(By.CSS_SELECTOR, ".chip-refine"))
    # strict CSP, no inline code: any violation or script error would be a console error
    assert severe_console_errors(d) == []
    wb.screenshot(d, SHOTS / "chat-desktop.png")


def test_like_is_recorded_in_the_store(chat: Any, server: wb.LiveServer) -> None:
    d = chat
    row = wb.send_message(d, "비 오는 날 듣기 좋은 노래")
    rec_id = rec_id_of(row)
    first = wb.cards(row)[0]
    like = by_label(first, "1번 곡 좋아요")
    like.click()
    wb.wait(d, lambda _: like.get_attribute("aria-pressed") == "true", msg="👍 never pressed")
    assert first.find_element(By.CSS_SELECTOR, ".card-status").text.strip()

    user = server.user_of(rec_id)
    assert user is not None
    stored = server.call(server.recommender.store.recommendation(rec_id))
    events = server.call(server.recommender.store.feedback_events())
    mine = [(e.song_id, e.signal) for e in events if e.user_id == user]
    assert (stored.song_ids[0], "like") in mine

    # 👎 on the same card takes the pressed state over
    dislike = by_label(first, "1번 곡 싫어요")
    dislike.click()
    wb.wait(d, lambda _: dislike.get_attribute("aria-pressed") == "true", msg="👎 never pressed")
    assert like.get_attribute("aria-pressed") == "false"
    wb.screenshot(d, SHOTS / "chat-feedback.png")


def test_refinement_and_mood_chips_bring_new_cards(chat: Any) -> None:
    d = chat
    first = wb.card_titles(wb.send_message(d, "퇴근길에 들을 노래 추천해줘"))
    assert len(first) == 5
    livelier = wb.click_chip(d, "더 신나게")
    assert len(wb.cards(livelier)) == 5
    assert wb.card_titles(livelier) != first
    other = wb.click_chip(d, "다른 노래")
    assert len(wb.cards(other)) == 5
    assert wb.card_titles(other) != wb.card_titles(livelier)

    sad = wb.click_chip(d, "슬픔")
    assert len(wb.cards(sad)) == 5
    top = sad.find_element(By.CSS_SELECTOR, ".mood-bar.is-top .mood-label").text
    assert top == "슬픔"
    # the user's side of the thread shows the chip's words, not a command
    users = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#thread .msg-user .msg-text")]
    assert users[-3:] == ["더 신나게", "다른 노래", "슬픔"]


def test_history_dialog_lists_past_answers(chat: Any) -> None:
    d = chat
    titles = wb.card_titles(wb.send_message(d, "잔잔한 노래 듣고 싶어"))
    opener = d.find_element(By.ID, "history-open")
    opener.click()
    dialog = d.find_element(By.ID, "history-dialog")
    wb.wait(d, lambda _: dialog.get_attribute("open") is not None, msg="history never opened")
    wb.wait(d, lambda _: dialog.find_elements(By.CSS_SELECTOR, ".history-item"),
            msg="history shows no items")
    listed = [e.text for e in dialog.find_elements(By.CSS_SELECTOR, ".history-title")]
    assert titles[0] in listed
    wb.screenshot(d, SHOTS / "history.png")
    active(d).send_keys(Keys.ESCAPE)
    wb.wait(d, lambda _: dialog.get_attribute("open") is None, msg="Escape did not close it")
    assert active(d) == opener  # focus goes back where it came from


def test_forget_me_dialog_deletes_everything(chat: Any, server: wb.LiveServer) -> None:
    d = chat
    row = wb.send_message(d, "우울해")
    user = server.user_of(rec_id_of(row))
    assert user is not None
    by_label(wb.cards(row)[0], "1번 곡 좋아요").click()
    wb.wait(d, lambda _: server.rows_of_user(user).get("feedback", 0) > 0,
            msg="feedback row never stored")

    d.find_element(By.ID, "forget-open").click()
    dialog = d.find_element(By.ID, "forget-dialog")
    wb.wait(d, lambda _: dialog.get_attribute("open") is not None, msg="confirm never opened")
    assert active(d).text == "취소"  # the safe choice has the focus
    wb.screenshot(d, SHOTS / "forget-confirm.png")
    d.find_element(By.ID, "forget-confirm").click()
    wb.wait(d, lambda _: dialog.get_attribute("open") is None, msg="confirm never closed")
    wb.wait(d, lambda _: not d.find_elements(By.CSS_SELECTOR, "#thread li.card"),
            msg="the thread kept its cards")
    assert "삭제" in d.find_element(By.ID, "thread").text
    assert not any(server.rows_of_user(user).values()), server.rows_of_user(user)

    # the browser starts over as a stranger and can go on chatting (fresh session + token)
    again = wb.send_message(d, "신나는 노래")
    assert len(wb.cards(again)) == 5
    assert server.user_of(rec_id_of(again)) != user


def test_asking_to_delete_in_words_opens_the_confirm(chat: Any) -> None:
    d = chat
    wb.send_message(d, "내 기록 삭제해줘")
    dialog = d.find_element(By.ID, "forget-dialog")
    wb.wait(d, lambda _: dialog.get_attribute("open") is not None, msg="confirm never opened")
    d.find_element(By.CSS_SELECTOR, "#forget-dialog [data-close]").click()
    wb.wait(d, lambda _: dialog.get_attribute("open") is None, msg="cancel did not close it")


def test_keyboard_only(chat: Any, server: wb.LiveServer) -> None:
    d = chat
    box = d.find_element(By.ID, "message")
    assert active(d) == box  # ready to type on arrival
    before = len(wb.bot_answers(d))
    active(d).send_keys("행복한 노래 틀어줘" + Keys.ENTER)  # Enter sends
    row = wb.wait_new_answer(d, before)
    assert len(wb.cards(row)) == 5
    assert active(d) == box  # still in the box for the next message

    # Shift+Tab from the box walks back through the chips into the newest cards
    seen = []
    for _ in range(40):
        active(d).send_keys(Keys.SHIFT + Keys.TAB)
        label = active(d).get_attribute("aria-label") or active(d).text
        seen.append(label)
        if label == "5번 곡 싫어요":
            break
    else:
        pytest.fail(f"never reached the last card by keyboard: {seen}")
    assert "분노 기분으로 추천" in seen and "다른 노래" in seen  # chips come before the box
    focused = active(d)
    outline = d.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused)
    assert outline not in ("none", ""), "no visible focus on a keyboard-focused button"
    active(d).send_keys(Keys.SHIFT + Keys.TAB)
    like = active(d)
    assert like.get_attribute("aria-label") == "5번 곡 좋아요"
    like.send_keys(Keys.SPACE)
    wb.wait(d, lambda _: like.get_attribute("aria-pressed") == "true", msg="Space did not press")
    assert active(d) == like  # the focus stays on the button it pressed
    wb.screenshot(d, SHOTS / "keyboard-focus.png")

    # the header actions come first in the Tab order, right after the skip link
    d.find_element(By.CSS_SELECTOR, ".brand").click()  # sets where Tab starts from
    order = []
    for _ in range(2):
        active(d).send_keys(Keys.TAB)
        order.append(active(d).text)
    assert order == ["기록", "내 정보 삭제"], order
    for _ in range(2):
        active(d).send_keys(Keys.SHIFT + Keys.TAB)
    skip = active(d)
    assert skip.text == "메시지 입력으로 건너뛰기" and skip.rect["y"] >= 0  # shown on focus
    skip.send_keys(Keys.ENTER)
    wb.wait(d, lambda _: active(d) == box, msg="the skip link did not reach the message box")
    d.find_element(By.CSS_SELECTOR, ".brand").click()
    active(d).send_keys(Keys.TAB, Keys.TAB)
    assert active(d).get_attribute("id") == "forget-open"
    active(d).send_keys(Keys.ENTER)
    dialog = d.find_element(By.ID, "forget-dialog")
    wb.wait(d, lambda _: dialog.get_attribute("open") is not None, msg="Enter did not open it")
    active(d).send_keys(Keys.ESCAPE)
    wb.wait(d, lambda _: dialog.get_attribute("open") is None, msg="Escape did not close it")


def test_phone_viewport(server: wb.LiveServer) -> None:
    with wb.browser(wb.PHONE, phone=True) as d:
        wb.open_chat(d, server.url)
        row = wb.send_message(d, "비 오는 밤에 혼자 들을 잔잔한 노래 추천해줘")
        assert len(wb.cards(row)) == 5
        width, inner, height, inner_h = d.execute_script(
            "const e = document.documentElement;"
            "return [e.scrollWidth, innerWidth, e.scrollHeight, innerHeight];")
        assert width <= inner, "the page scrolls sideways on a phone"
        assert height <= inner_h, "the page itself scrolls (only the thread should)"
        # one card per row, the composer and the header both on screen
        xs = {round(c.rect["x"]) for c in wb.cards(row)}
        assert len(xs) == 1
        composer = d.find_element(By.ID, "message").rect
        assert composer["y"] + composer["height"] <= inner_h
        assert d.find_element(By.ID, "forget-open").is_displayed()
        wb.screenshot(d, SHOTS / "chat-phone.png")
    with wb.browser((320, 640), phone=True) as d:
        wb.open_chat(d, server.url)
        assert len(wb.cards(wb.send_message(d, "짜증나"))) == 5
        assert d.execute_script("return document.documentElement.scrollWidth") <= 320
        wb.screenshot(d, SHOTS / "chat-320.png")


def test_server_text_is_never_html_and_errors_are_polite(chat: Any) -> None:
    d = chat
    wb.send_message(d, '<img src=x onerror="document.title=1">노래 추천')
    assert not d.find_elements(By.CSS_SELECTOR, "#thread img")
    assert '<img src=x onerror="document.title=1">노래 추천' in d.find_element(By.ID, "thread").text

    # a message over the server's limit (bypassing the box's maxlength) comes back as a bubble
    before = len(wb.bot_answers(d))
    d.execute_script("const m = document.getElementById('message'); m.removeAttribute('maxlength');"
                     "m.value = '가'.repeat(5000);"
                     "document.getElementById('composer').requestSubmit();")
    row = wb.wait_new_answer(d, before)
    bubble = row.find_element(By.CSS_SELECTOR, ".msg")
    assert "msg-warn" in bubble.get_attribute("class")
    assert "너무 길어요" in bubble.text and "Traceback" not in bubble.text


def test_admin_login(server: wb.LiveServer) -> None:
    if server.status("/admin") == 404:
        pytest.skip("/admin answers 404: the admin dashboard is not installed in bot.server")
    with wb.browser(wb.DESKTOP) as d:
        wb.admin_login(d, server.url, wb.ADMIN_TOKEN)
        assert "/admin" in d.current_url
        wb.screenshot(d, SHOTS / "admin.png")
