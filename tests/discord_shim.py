"""Make ``dpytest.add_reaction`` / ``remove_reaction`` work on discord.py ≥ 2.4 (dpytest #129).

dpytest 0.7.0 builds reaction gateway payloads without the ``type`` (normal vs super reaction)
and ``burst`` keys that discord.py 2.4+ reads, so every fake reaction dies with
``KeyError: 'type'`` before any listener runs. The shim fills in the values a real gateway
sends for an ordinary reaction. It patches discord.py's ``ConnectionState`` (dpytest's
``FakeState`` inherits the parsers), is idempotent, and is only imported by the Discord tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from discord.state import ConnectionState

__all__ = ["install_reaction_shim"]

_MARK = "_moodtune_reaction_shim"
_PARSERS = ("parse_message_reaction_add", "parse_message_reaction_remove")


def _with_defaults(original: Callable[[Any, dict], None]) -> Callable[[Any, dict], None]:
    def parse(self: Any, data: dict) -> None:
        data.setdefault("type", 0)  # ReactionType.normal
        data.setdefault("burst", False)
        return original(self, data)

    setattr(parse, _MARK, True)
    parse.__wrapped__ = original  # type: ignore[attr-defined]
    return parse


def install_reaction_shim() -> None:
    """Patch the two reaction parsers once per process (safe to call from every test)."""
    for name in _PARSERS:
        current = getattr(ConnectionState, name)
        if not getattr(current, _MARK, False):
            setattr(ConnectionState, name, _with_defaults(current))
