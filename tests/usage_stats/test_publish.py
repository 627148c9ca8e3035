"""The k rule on its own (``publish.k_anonymous``), for any buckets: nothing shown has
fewer than k people, ``other`` is only ever two or more small countries, the bucket of
no country is never merged, and everything shown is a bucket or a sum of small ones."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from tidings.usage_stats.publish import OTHER, Counts, k_anonymous, totals

DAYS = [date(2027, 3, 10), date(2027, 3, 11)]


def bucket(country: str | None, subjects: int, messages: int = 10, *, day: date = DAYS[0],
           channel: str = "sms", direction: str = "outbound") -> Counts:
    return Counts(day=day, channel=channel, direction=direction, country=country,
                  messages=messages, segments=messages, delivered=messages, failed=0,
                  subjects=subjects)


def test_small_countries_are_merged_into_other_once_they_reach_k() -> None:
    shown = k_anonymous([bucket("US", 9), bucket("FR", 4, 7), bucket("DE", 1, 3),
                         bucket(None, 3)], 5)
    assert [(b.country, b.subjects, b.messages) for b in shown] == [("US", 9, 10),
                                                                    (OTHER, 5, 10)]


def test_one_small_country_alone_is_not_shown() -> None:
    assert [b.country for b in k_anonymous([bucket("US", 5), bucket("JP", 4)], 5)] == ["US"]


def test_the_bucket_of_no_country_is_shown_alone_or_not_at_all() -> None:
    assert k_anonymous([bucket(None, 4), bucket("FR", 2), bucket("DE", 2)], 5) == []
    shown = k_anonymous([bucket(None, 5), bucket("FR", 2)], 5)
    assert [(b.country, b.subjects) for b in shown] == [(None, 5)]


def test_each_day_channel_and_direction_is_merged_on_its_own() -> None:
    shown = k_anonymous([bucket("FR", 3), bucket("DE", 3, channel="whatsapp"),
                         bucket("IT", 3, day=DAYS[1]), bucket("ES", 3, direction="inbound")],
                        5)
    assert shown == []


countries = st.sampled_from(["US", "FR", "DE", "JP", "BR", None])
stored = st.lists(st.builds(
    bucket, countries, st.integers(1, 12), st.integers(1, 50), day=st.sampled_from(DAYS),
    channel=st.sampled_from(["sms", "whatsapp"]),
    direction=st.sampled_from(["outbound", "inbound"])), max_size=30).map(
    # One row per bucket, as the builder writes them.
    lambda rows: list({(b.day, b.channel, b.direction, b.country): b for b in rows}.values()))


@given(stored, st.integers(2, 8))
def test_nothing_shown_has_fewer_than_k_people_and_nothing_hidden_leaks(
        rows: list[Counts], k: int) -> None:
    shown = k_anonymous(rows, k)
    assert all(b.subjects >= k for b in shown)
    for b in shown:
        group = [r for r in rows if (r.day, r.channel, r.direction) == (
            b.day, b.channel, b.direction)]
        if b.country == OTHER:
            small = [r for r in group if r.subjects < k and r.country is not None]
            assert len(small) >= 2  # each fewer than k: together they had to be two
            assert b.messages == sum(r.messages for r in small)
            assert b.subjects == sum(r.subjects for r in small)
        else:
            assert b in rows  # shown as it is stored
    hidden = [r for r in rows if r not in shown]
    assert all(r.subjects < k for r in hidden)
    # The totals are those of what is shown: no hidden bucket is in them.
    assert totals(shown).messages == sum(b.messages for b in shown)
