"""Kakao's skill-response format (v2.0): its limits and the validator every builder ends in.

Kakao rejects a whole response if one list has six items or one label is too long, and the user
then sees a generic error; checking here makes such a layout change fail in tests instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LIMITS", "KakaoLimits", "KakaoResponseError", "validate_response"]

@dataclass(frozen=True, slots=True)
class KakaoLimits:
    """Limits of the skill response format (v2.0).

    The counts and the simpleText / basicCard-description lengths are Kakao's documented hard
    limits; the list-item title/description lengths are display limits we hold ourselves to,
    because longer lines are cut mid-word on a phone anyway.
    """

    outputs: int = 3
    quick_replies: int = 10
    simple_text: int = 1000
    list_items: int = 5
    list_buttons: int = 2
    carousel_items: int = 10
    card_buttons: int = 3
    card_title: int = 50
    card_description: int = 230
    label: int = 14
    list_title: int = 50
    list_description: int = 50
    header_title: int = 40


LIMITS = KakaoLimits()
_OUTPUT_KINDS = frozenset({"simpleText", "listCard", "carousel", "basicCard"})


class KakaoResponseError(ValueError):
    """A response we built breaks Kakao's format; Kakao would reject it, so we never send it."""


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise KakaoResponseError(f"{where}: {what}")


def _check_text(value: object, where: str, limit: int, *, required: bool = True) -> None:
    if value is None and not required:
        return
    _need(isinstance(value, str), where, "must be a string")
    assert isinstance(value, str)
    _need(bool(value.strip()) or not required, where, "must not be empty")
    _need(len(value) <= limit, where, f"{len(value)} chars > {limit}")


def _check_button(b: object, where: str) -> None:
    _need(isinstance(b, dict), where, "must be an object")
    assert isinstance(b, dict)
    _check_text(b.get("label"), f"{where}.label", LIMITS.label)
    action = b.get("action")
    _need(action in {"webLink", "message", "block"}, f"{where}.action", f"unknown {action!r}")
    key = {"webLink": "webLinkUrl", "message": "messageText", "block": "blockId"}[action]
    _check_text(b.get(key), f"{where}.{key}", 1000)


def _check_basic_card(card: object, where: str) -> None:
    _need(isinstance(card, dict), where, "must be an object")
    assert isinstance(card, dict)
    _check_text(card.get("title"), f"{where}.title", LIMITS.card_title, required=False)
    _check_text(card.get("description"), f"{where}.description", LIMITS.card_description,
                required=False)
    buttons = card.get("buttons", [])
    _need(isinstance(buttons, list) and len(buttons) <= LIMITS.card_buttons,
          f"{where}.buttons", f"at most {LIMITS.card_buttons}")
    for i, b in enumerate(buttons):
        _check_button(b, f"{where}.buttons[{i}]")


def _check_list_card(card: object, where: str) -> None:
    _need(isinstance(card, dict), where, "must be an object")
    assert isinstance(card, dict)
    header = card.get("header")
    _need(isinstance(header, dict), f"{where}.header", "must be an object")
    assert isinstance(header, dict)
    _check_text(header.get("title"), f"{where}.header.title", LIMITS.header_title)
    items = card.get("items")
    _need(isinstance(items, list) and 1 <= len(items) <= LIMITS.list_items,
          f"{where}.items", f"needs 1..{LIMITS.list_items} items")
    assert isinstance(items, list)
    for i, item in enumerate(items):
        w = f"{where}.items[{i}]"
        _need(isinstance(item, dict), w, "must be an object")
        _check_text(item.get("title"), f"{w}.title", LIMITS.list_title)
        _check_text(item.get("description"), f"{w}.description", LIMITS.list_description,
                    required=False)
        if "link" in item:
            _need(isinstance(item["link"], dict) and isinstance(item["link"].get("web"), str),
                  f"{w}.link", "must be {'web': url}")
    buttons = card.get("buttons", [])
    _need(isinstance(buttons, list) and len(buttons) <= LIMITS.list_buttons,
          f"{where}.buttons", f"at most {LIMITS.list_buttons}")
    for i, b in enumerate(buttons):
        _check_button(b, f"{where}.buttons[{i}]")


def validate_response(resp: Mapping[str, Any]) -> dict[str, Any]:
    """Check a skill response against Kakao's format and limits; return it unchanged.

    Every builder in this module calls it, so a layout change that would make Kakao reject
    the answer fails in tests, not in a user's chat.
    """
    _need(resp.get("version") == "2.0", "version", "must be '2.0'")
    if "useCallback" in resp:
        _need(resp["useCallback"] is True, "useCallback", "must be true")
        data = resp.get("data") or {}
        _check_text(data.get("text"), "data.text", LIMITS.simple_text, required=False)
        return dict(resp)
    template = resp.get("template")
    _need(isinstance(template, dict), "template", "must be an object")
    assert isinstance(template, dict)
    outputs = template.get("outputs")
    _need(isinstance(outputs, list) and 1 <= len(outputs) <= LIMITS.outputs,
          "template.outputs", f"needs 1..{LIMITS.outputs} outputs")
    assert isinstance(outputs, list)
    for i, out in enumerate(outputs):
        where = f"template.outputs[{i}]"
        _need(isinstance(out, dict) and len(out) == 1 and next(iter(out)) in _OUTPUT_KINDS,
              where, f"must be one of {sorted(_OUTPUT_KINDS)}")
        kind, body = next(iter(out.items()))
        where = f"{where}.{kind}"
        if kind == "simpleText":
            _need(isinstance(body, dict), where, "must be an object")
            _check_text(body.get("text"), f"{where}.text", LIMITS.simple_text)
        elif kind == "listCard":
            _check_list_card(body, where)
        elif kind == "basicCard":
            _check_basic_card(body, where)
        else:
            _need(isinstance(body, dict) and body.get("type") == "basicCard", where,
                  "only basicCard carousels are used")
            items = body.get("items")
            _need(isinstance(items, list) and 1 <= len(items) <= LIMITS.carousel_items,
                  f"{where}.items", f"needs 1..{LIMITS.carousel_items} cards")
            for j, card in enumerate(items):
                _check_basic_card(card, f"{where}.items[{j}]")
    replies = template.get("quickReplies", [])
    _need(isinstance(replies, list) and len(replies) <= LIMITS.quick_replies,
          "template.quickReplies", f"at most {LIMITS.quick_replies}")
    for i, qr in enumerate(replies):
        where = f"template.quickReplies[{i}]"
        _need(isinstance(qr, dict), where, "must be an object")
        _check_text(qr.get("label"), f"{where}.label", LIMITS.label)
        action = qr.get("action")
        _need(action in {"message", "block"}, f"{where}.action", f"unknown {action!r}")
        key = "messageText" if action == "message" else "blockId"
        _check_text(qr.get(key), f"{where}.{key}", LIMITS.simple_text)
        _need(isinstance(qr.get("extra", {}), dict), f"{where}.extra", "must be an object")
    return dict(resp)

