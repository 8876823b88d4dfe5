"""Logs and metrics every adapter shares, so Kakao and Discord are operated the same way.

Two small pieces, both dependency-free on purpose (the serving box is small and the bot must
start fast):

* ``setup_logging`` — plain lines for a terminal, one JSON object per line for a log shipper,
  and a redaction filter on the handler so a token or secret that slips into a message, an
  argument or a traceback is masked before it reaches any sink. Privacy is enforced at the one
  place every record passes through instead of trusted to every call site.
* ``Metrics`` — counters, gauges and fixed-bucket histograms rendered in the Prometheus text
  format. Fixed buckets (not client-side quantiles) because they can be summed across
  processes and restarts, which is what a scraper needs; label sets are capped so a scanner
  hitting random URLs cannot grow memory without bound.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

__all__ = [
    "DEFAULT_LATENCY_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "JsonFormatter",
    "Metrics",
    "RedactFilter",
    "redact",
    "setup_logging",
    "user_ref",
]

# ---- logging ------------------------------------------------------------------------------

# Discord bot tokens: base64 user id . base64 timestamp . HMAC (see discord.py's docs). The
# pattern is deliberately a little looser than the real shape: masking a false positive costs
# nothing, leaking a real token costs a rotation.
_DISCORD_TOKEN = re.compile(r"[A-Za-z\d_-]{23,28}\.[A-Za-z\d_-]{6,7}\.[A-Za-z\d_-]{27,40}")
REDACTED = "[REDACTED]"
_HANDLER_MARK = "_moodtune_handler"

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_STD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName"}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask Discord-token-shaped strings and the given literal secrets in ``text``."""
    for s in secrets:
        if s and s in text:
            text = text.replace(s, REDACTED)
    return _DISCORD_TOKEN.sub(REDACTED, text)


class RedactFilter(logging.Filter):
    """Handler filter that rewrites each record with secrets masked.

    It formats the message itself (``msg % args``) and pre-renders the traceback, because a
    secret is as likely to arrive as an argument or inside an exception message as in the
    format string.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Short "secrets" would mask half the log; real secrets are long.
        self.secrets = tuple(s for s in secrets if s and len(s) >= 6)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        for key, value in list(vars(record).items()):
            if key not in _STD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value, self.secrets))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, any ``extra=`` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class _PlainFormatter(logging.Formatter):
    """Classic text line with ``extra=`` fields appended as key=value (kept greppable)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{k}={v}" for k, v in vars(record).items()
                  if k not in _STD_ATTRS and not k.startswith("_")]
        if fields:
            head, sep, tail = line.partition("\n")
            line = f"{head} [{' '.join(fields)}]{sep}{tail}"
        return line


def _secret_values(settings: Any) -> list[str]:
    out = []
    for name in ("discord_token", "kakao_secret"):
        value = getattr(settings, name, None)
        if value is None:
            continue
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
        if raw:
            out.append(raw)
    return out


def setup_logging(settings: Any, *, stream: IO[str] | None = None) -> logging.Handler:
    """Install one handler on the root logger per ``settings.log_level`` / ``settings.log_json``.

    Idempotent: calling it again (tests, a reload) replaces the handler it installed before
    rather than stacking duplicates. Returns the handler so callers and tests can inspect it.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_MARK, False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter() if settings.log_json else _PlainFormatter())
    handler.addFilter(RedactFilter(_secret_values(settings)))
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # aiohttp's access log repeats what the metrics middleware already records, with full URLs.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler


def user_ref(user_id: str, key: bytes | str = b"") -> str:
    """Stable short pseudonym for a user id, so logs can follow one user without naming them.

    Pass the install's secret ``key`` (``Recommender.user_ref`` does): unkeyed, anyone could
    hash guessed ids and match them against the logs.
    """
    raw_key = key.encode("utf-8") if isinstance(key, str) else key
    digest = hashlib.blake2b(user_id.encode("utf-8", "surrogatepass"), digest_size=6,
                             key=raw_key[:64]).hexdigest()
    return f"u_{digest}"


# ---- metrics -------------------------------------------------------------------------------

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
OVERFLOW = "__overflow__"

#: Seconds; spans a cached reply (ms) to Kakao's 5 s deadline.
DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels_text(names: Sequence[str], values: Sequence[str],
                 extra: tuple[str, str] | None = None) -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(f'{extra[0]}="{_escape(extra[1])}"')
    return "{" + ",".join(pairs) + "}" if pairs else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Sequence[str], max_series: int) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL.match(label) or label == "le":
                raise ValueError(f"invalid label name {label!r} for {name}")
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self.max_series = max_series
        self._lock = threading.Lock()

    def _key(self, labels: Mapping[str, object], series: Mapping[tuple[str, ...], Any]
             ) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        key = tuple(str(labels[n]) for n in self.labelnames)
        if key not in series and len(series) >= self.max_series:
            # Cardinality guard: fold new label sets into one series instead of growing.
            key = tuple(OVERFLOW for _ in self.labelnames)
        return key

    def render(self) -> list[str]:
        raise NotImplementedError

    def _header(self) -> list[str]:
        help_text = self.help.replace("\\", "\\\\").replace("\n", " ")
        return [f"# HELP {self.name} {help_text}", f"# TYPE {self.name} {self.kind}"]


class _Scalar(_Metric):
    """One float per label set; Counter and Gauge differ only in which changes they allow."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._values: dict[tuple[str, ...], float] = {}

    def _add(self, amount: float, labels: dict[str, object]) -> None:
        with self._lock:
            key = self._key(labels, self._values)
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: object) -> float:
        key = tuple(str(labels[n]) for n in self.labelnames)
        return self._values.get(key, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self._header() + [
            f"{self.name}{_labels_text(self.labelnames, k)} {_fmt(v)}" for k, v in items]


class Counter(_Scalar):
    """Monotonic count per label set (requests, feedback, errors)."""

    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self._add(amount, labels)


class Gauge(_Scalar):
    """A value that goes up and down (index size, callbacks in flight)."""

    kind = "gauge"

    def set(self, value: float, **labels: object) -> None:
        with self._lock:
            self._values[self._key(labels, self._values)] = float(value)

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        self._add(amount, labels)

    def dec(self, amount: float = 1.0, **labels: object) -> None:
        self._add(-amount, labels)


class Histogram(_Metric):
    """Fixed-bucket distribution (latency); ``quantile`` gives a bucket-resolution estimate."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: Sequence[str], max_series: int,
                 buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        super().__init__(name, help, labelnames, max_series)
        b = sorted(float(x) for x in buckets if not math.isinf(x))
        if not b or len(set(b)) != len(b):
            raise ValueError(f"{name}: buckets must be distinct finite numbers")
        self.buckets = (*b, math.inf)
        # per series: [count per bucket (non-cumulative)..., sum, count]
        self._series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, value: float, **labels: object) -> None:
        with self._lock:
            key = self._key(labels, self._series)
            row = self._series.get(key)
            if row is None:
                row = self._series[key] = [0.0] * (len(self.buckets) + 2)
            for i, upper in enumerate(self.buckets):
                if value <= upper:
                    row[i] += 1
                    break
            row[-2] += value
            row[-1] += 1

    def count(self, **labels: object) -> int:
        key = tuple(str(labels[n]) for n in self.labelnames)
        row = self._series.get(key)
        return int(row[-1]) if row else 0

    def quantile(self, q: float, **labels: object) -> float | None:
        """Upper bound of the bucket holding the q-quantile (what a scraper would estimate)."""
        key = tuple(str(labels[n]) for n in self.labelnames)
        with self._lock:
            row = list(self._series.get(key) or [])
        if not row or row[-1] == 0:
            return None
        target, seen = q * row[-1], 0.0
        for i, upper in enumerate(self.buckets):
            seen += row[i]
            if seen >= target:
                return upper
        return math.inf

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        lines = self._header()
        for key, row in items:
            cumulative = 0.0
            for i, upper in enumerate(self.buckets):
                cumulative += row[i]
                le = _labels_text(self.labelnames, key, ("le", _fmt(upper)))
                lines.append(f"{self.name}_bucket{le} {_fmt(cumulative)}")
            plain = _labels_text(self.labelnames, key)
            lines.append(f"{self.name}_sum{plain} {_fmt(row[-2])}")
            lines.append(f"{self.name}_count{plain} {_fmt(row[-1])}")
        return lines


class Metrics:
    """A registry: create-or-get metrics by name, render them all as Prometheus text.

    Create-or-get (rather than "register once") lets the Kakao and Discord adapters share one
    registry without coordinating who declares ``moodtune_feedback_total`` first.
    """

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, *, max_series: int = 1000) -> None:
        self.max_series = max_series
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _get(self, cls: type[_Metric], name: str, help: str, labelnames: Sequence[str],
             **kwargs: Any) -> Any:
        with self._lock:
            existing = self._metrics.get(name)
            if existing is not None:
                if type(existing) is not cls or existing.labelnames != tuple(labelnames):
                    raise ValueError(
                        f"metric {name} already registered as {existing.kind} with labels "
                        f"{existing.labelnames}")
                return existing
            metric = cls(name, help, labelnames, self.max_series, **kwargs)
            self._metrics[name] = metric
            return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        return self._get(Counter, name, help, labelnames)

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        return self._get(Gauge, name, help, labelnames)

    def histogram(self, name: str, help: str, labelnames: Sequence[str] = (),
                  buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> Histogram:
        return self._get(Histogram, name, help, labelnames, buckets=buckets)

    def get(self, name: str) -> _Metric | None:
        return self._metrics.get(name)

    def render(self) -> str:
        """The whole registry in Prometheus text exposition format 0.0.4."""
        with self._lock:
            metrics = [self._metrics[k] for k in sorted(self._metrics)]
        lines: list[str] = []
        for m in metrics:
            lines.extend(m.render())
        return "\n".join(lines) + "\n"
