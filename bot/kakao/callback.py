"""Where a late answer may be POSTed: Kakao's callback host, over https, at a public address.

The ``callbackUrl`` arrives in the request body, so anyone who can reach the skill endpoint
chooses where this server sends a POST — an SSRF hole into the cloud metadata service or the
private network unless every step is checked:

* **the URL** (at request time, a refusal is a 400): https only, no credentials, the host on
  ``KAKAO_CALLBACK_HOSTS``; an IP literal must be a public address;
* **the name** (at request time, and again when connecting): every address it resolves to must
  be public. The delivery's connector resolves through :class:`CheckedResolver`, which returns
  only the addresses it has just checked, so the connection goes to exactly those — a DNS answer
  that changes between the check and the connect (rebinding) cannot swap in a private address;
* **the answer**: redirects are never followed (a 3xx is a failed delivery).

``KAKAO_CALLBACK_ALLOW_INSECURE`` (tests, local development) allows http and loopback/private
addresses; the host allow-list still applies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from bot.settings import Settings

__all__ = [
    "CallbackRefusedError",
    "CallbackTarget",
    "CheckedResolver",
    "check_callback_url",
    "forbidden_reason",
    "resolve_checked",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: A name that takes longer than this to resolve at request time is left to the delivery.
REQUEST_DNS_TIMEOUT_S = 1.0


class CallbackRefusedError(ValueError):
    """The callback URL, or an address its host resolves to, is not one we POST to."""


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """A callback URL that passed the static checks (``host`` normalised, ``ip`` if a literal)."""

    url: str
    host: str
    port: int
    ip: IPAddress | None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address (None when it is one)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    checks = (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
              ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
              ("private", ip.is_private), ("reserved", ip.is_reserved))
    for name, hit in checks:
        if hit:
            return name
    return None if ip.is_global else "non-public"


def check_callback_url(url: str, settings: Settings) -> CallbackTarget:
    """The checks that need no network: scheme, credentials, allow-listed host, IP literal.

    Raises :class:`CallbackRefusedError` with a message fit for the 400 answer.
    """
    insecure = settings.kakao_callback_allow_insecure
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRefusedError(f"userRequest.callbackUrl is not a valid URL ({exc})") from None
    schemes = ("https", "http") if insecure else ("https",)
    if parts.scheme not in schemes:
        raise CallbackRefusedError("userRequest.callbackUrl must use https")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefusedError("userRequest.callbackUrl must not carry credentials")
    host = (parts.hostname or "").rstrip(".").lower()
    if host not in settings.kakao_callback_hosts:
        raise CallbackRefusedError(
            f"userRequest.callbackUrl host {host!r} is not in KAKAO_CALLBACK_HOSTS "
            f"({', '.join(settings.kakao_callback_hosts) or 'empty'})")
    try:
        ip: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and not insecure and (reason := forbidden_reason(ip)):
        raise CallbackRefusedError(f"userRequest.callbackUrl points at a {reason} address")
    return CallbackTarget(url, host, port or (443 if parts.scheme == "https" else 80), ip)


async def _getaddrinfo(host: str, port: int) -> list[tuple[Any, ...]]:
    """The loop's resolver (a thread, like aiohttp's default); tests replace this function."""
    return await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)


async def resolve_checked(host: str, port: int, settings: Settings) -> list[tuple[Any, ...]]:
    """Resolve ``host`` and refuse it if *any* address is not public (unless insecure is on).

    All-or-nothing rather than "keep the public ones": a name that answers with a private
    address is misconfigured or hostile either way. Returns getaddrinfo's tuples.
    """
    infos = await _getaddrinfo(host, port)
    if not infos:
        raise CallbackRefusedError(f"userRequest.callbackUrl host {host!r} has no address")
    if not settings.kakao_callback_allow_insecure:
        for info in infos:
            reason = forbidden_reason(ipaddress.ip_address(info[4][0].split("%", 1)[0]))
            if reason:
                raise CallbackRefusedError(
                    f"userRequest.callbackUrl host {host!r} resolves to a {reason} address")
    return infos


class CheckedResolver(AbstractResolver):
    """aiohttp resolver for callback deliveries: only ever returns addresses it just checked.

    Used with ``use_dns_cache=False`` so every delivery resolves (and checks) afresh.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        infos = await resolve_checked(host, port, self._settings)
        return [ResolveResult(hostname=host, host=info[4][0], port=info[4][1], family=info[0],
                              proto=info[2], flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
                for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)
                and family in (socket.AF_UNSPEC, info[0])]

    async def close(self) -> None:
        return None
