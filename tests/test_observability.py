"""Structured logging with redaction, and the Prometheus-text metrics registry."""

from __future__ import annotations

import io
import json
import logging
import math

import pytest

from bot.observability import (
    REDACTED,
    Metrics,
    RedactFilter,
    redact,
    setup_logging,
    user_ref,
)
from tests.fakes import make_settings

# Shaped like a Discord bot token (not a real one).
FAKE_TOKEN = "MTAxMjM0NTY3ODkwMTIzNDU2Nw.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


# ---- redaction --------------------------------------------------------------------------------
def test_redact_masks_discord_token_and_literal_secrets():
    text = f"token={FAKE_TOKEN} secret=hunter2-kakao ok"
    out = redact(text, ["hunter2-kakao"])
    assert FAKE_TOKEN not in out and "hunter2-kakao" not in out
    assert out.count(REDACTED) == 2 and out.endswith(" ok")


def test_redact_leaves_ordinary_text_alone():
    text = "추천 3곡 (rec_id=0123456789abcdef) in 12.5 ms, file a.b.c"
    assert redact(text, ["x"]) == text


def test_filter_ignores_too_short_secrets():
    # A 1-character "secret" would mask half the log.
    assert RedactFilter(["ab", "", "long-enough"]).secrets == ("long-enough",)


@pytest.mark.usefixtures("restore_root_logger")
def test_setup_logging_json_lines_with_extra_fields_and_redaction(tmp_path):
    settings = make_settings(tmp_path, log_json=True, kakao_secret="s3cret-value-xyz",
                             discord_token=FAKE_TOKEN)
    buf = io.StringIO()
    setup_logging(settings, stream=buf)
    log = logging.getLogger("moodtune.test")
    log.info("hello %s and %s", "s3cret-value-xyz", FAKE_TOKEN, extra={"user": "u_1", "ms": 3.5})
    try:
        raise RuntimeError(f"boom with {FAKE_TOKEN}")
    except RuntimeError:
        log.exception("failed")
    log.info("extra carries it too", extra={"header": "s3cret-value-xyz"})
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert len(lines) == 3
    first = lines[0]
    assert first["level"] == "INFO" and first["logger"] == "moodtune.test"
    assert first["msg"] == f"hello {REDACTED} and {REDACTED}"
    assert first["user"] == "u_1" and first["ms"] == 3.5
    assert first["ts"].endswith("Z")
    assert "boom with" in lines[1]["exc"] and FAKE_TOKEN not in lines[1]["exc"]
    assert lines[2]["header"] == REDACTED
    assert "s3cret-value-xyz" not in buf.getvalue() and FAKE_TOKEN not in buf.getvalue()


@pytest.mark.usefixtures("restore_root_logger")
def test_setup_logging_plain_and_idempotent(tmp_path):
    settings = make_settings(tmp_path, log_json=False, log_level="WARNING")
    buf = io.StringIO()
    setup_logging(settings, stream=buf)
    setup_logging(settings, stream=buf)  # replaces, does not stack
    mine = [h for h in logging.getLogger().handlers if getattr(h, "_moodtune_handler", False)]
    assert len(mine) == 1
    log = logging.getLogger("moodtune.test")
    log.info("not shown")
    log.warning("shown %d", 7, extra={"kind": "x"})
    out = buf.getvalue()
    assert "not shown" not in out
    assert out.count("shown 7") == 1 and "[kind=x]" in out and "WARNING" in out


def test_user_ref_is_stable_short_and_not_the_id():
    a, b = user_ref("botUserKey-123"), user_ref("botUserKey-123")
    assert a == b and a.startswith("u_") and "123" not in a and len(a) == 14
    assert user_ref("botUserKey-124") != a
    assert user_ref("botUserKey-123", key="salt") != a


# ---- metrics ----------------------------------------------------------------------------------
def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_counter_with_labels_renders_prometheus_text():
    m = Metrics()
    c = m.counter("moodtune_requests_total", "Requests.", ["route", "status"])
    c.inc(route="/kakao/skill", status=200)
    c.inc(2, route="/kakao/skill", status=200)
    c.inc(route="/healthz", status=200)
    text = m.render()
    assert "# HELP moodtune_requests_total Requests." in text
    assert "# TYPE moodtune_requests_total counter" in text
    s = _samples(text)
    assert s['moodtune_requests_total{route="/kakao/skill",status="200"}'] == 3
    assert s['moodtune_requests_total{route="/healthz",status="200"}'] == 1
    assert c.value(route="/kakao/skill", status=200) == 3
    with pytest.raises(ValueError):
        c.inc(-1, route="x", status=1)
    with pytest.raises(ValueError):
        c.inc(route="x")  # missing label


def test_label_values_are_escaped():
    m = Metrics()
    m.counter("x_total", "X.", ["v"]).inc(v='a"b\\c\nd')
    assert 'x_total{v="a\\"b\\\\c\\nd"} 1' in m.render()


def test_histogram_buckets_sum_count_and_quantile():
    m = Metrics()
    h = m.histogram("lat_seconds", "Latency.", ["route"], buckets=(0.1, 0.5, 1.0))
    for v in (0.05, 0.2, 0.3, 0.7, 3.0):
        h.observe(v, route="/a")
    s = _samples(m.render())
    assert s['lat_seconds_bucket{route="/a",le="0.1"}'] == 1
    assert s['lat_seconds_bucket{route="/a",le="0.5"}'] == 3
    assert s['lat_seconds_bucket{route="/a",le="1"}'] == 4
    assert s['lat_seconds_bucket{route="/a",le="+Inf"}'] == 5
    assert s['lat_seconds_count{route="/a"}'] == 5
    assert s['lat_seconds_sum{route="/a"}'] == pytest.approx(4.25)
    assert h.quantile(0.5, route="/a") == 0.5
    assert h.quantile(0.99, route="/a") == math.inf
    assert h.quantile(0.5, route="/none") is None
    assert h.count(route="/a") == 5


def test_gauge_set_inc_dec():
    m = Metrics()
    g = m.gauge("songs", "Songs.")
    g.set(300)
    g.inc()
    g.dec(2)
    assert g.value() == 299
    assert "songs 299" in m.render()


def test_registry_is_create_or_get_and_rejects_conflicts():
    m = Metrics()
    a = m.counter("fb_total", "Feedback.", ["signal"])
    assert m.counter("fb_total", "Feedback.", ["signal"]) is a
    with pytest.raises(ValueError):
        m.gauge("fb_total", "Feedback.", ["signal"])
    with pytest.raises(ValueError):
        m.counter("fb_total", "Feedback.", ["other"])
    with pytest.raises(ValueError):
        m.counter("bad name", "x")
    with pytest.raises(ValueError):
        m.histogram("h", "x", ["le"])


def test_label_cardinality_is_capped():
    m = Metrics(max_series=3)
    c = m.counter("paths_total", "Paths.", ["path"])
    for i in range(10):
        c.inc(path=f"/scan/{i}")
    s = _samples(m.render())
    assert len(s) == 3 + 1  # three real series + the overflow bucket
    assert s['paths_total{path="__overflow__"}'] == 7
