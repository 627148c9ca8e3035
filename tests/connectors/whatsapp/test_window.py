"""The 24-hour customer-service window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.connectors.base import WhatsAppContent
from tidings.connectors.whatsapp.window import (
    CUSTOMER_SERVICE_WINDOW,
    may_send,
    may_send_free_form,
    needs_customer_service_window,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEMPLATE = WhatsAppContent(kind="template", template_name="order_shipped", language="en_US")
MEDIA = WhatsAppContent(kind="media", media_type="image", media_url="https://cdn.example/a.png")


def test_the_window_is_24_hours() -> None:
    assert timedelta(hours=24) == CUSTOMER_SERVICE_WINDOW


@pytest.mark.parametrize(("content", "needed"), [(None, True), (MEDIA, True),
                                                 (TEMPLATE, False)])
def test_which_content_needs_the_window(content: WhatsAppContent | None, needed: bool) -> None:
    assert needs_customer_service_window(content) is needed


@pytest.mark.parametrize(("ago", "open_"), [
    (timedelta(0), True), (timedelta(hours=23, minutes=59, seconds=59), True),
    (timedelta(hours=24), False), (timedelta(days=3), False),
    (-timedelta(minutes=5), True)])  # the customer's clock ahead of ours
def test_window_boundaries(ago: timedelta, open_: bool) -> None:
    assert may_send_free_form(NOW - ago, NOW) is open_


def test_closed_when_the_customer_never_wrote() -> None:
    assert not may_send_free_form(None, NOW)


def test_other_timezones_compare_by_instant() -> None:
    last = datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=-10)))  # 11:00 UTC

    assert may_send_free_form(last, NOW)


@pytest.mark.parametrize("naive", ["last", "now"])
def test_naive_times_are_refused(naive: str) -> None:
    last = NOW.replace(tzinfo=None) if naive == "last" else NOW
    now = NOW.replace(tzinfo=None) if naive == "now" else NOW

    with pytest.raises(ValueError, match="timezone-aware"):
        may_send_free_form(last, now)


def test_templates_go_any_time_the_rest_only_inside_the_window() -> None:
    stale = NOW - timedelta(days=2)

    assert may_send(TEMPLATE, None, NOW)
    assert may_send(TEMPLATE, stale, NOW)
    assert not may_send(None, stale, NOW)
    assert not may_send(MEDIA, None, NOW)
    assert may_send(MEDIA, NOW - timedelta(hours=1), NOW)


@given(st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=2)))
def test_open_exactly_below_24_hours(ago: timedelta) -> None:
    assert may_send_free_form(NOW - ago, NOW) is (ago < CUSTOMER_SERVICE_WINDOW)
