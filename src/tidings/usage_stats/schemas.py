"""The answers of ``GET /v1/operator/stats/traffic``."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class TrafficBucketOut(BaseModel):
    """One day's messages of one channel, direction and country: at least
    ``min_subjects`` people."""

    day: date = Field(description="UTC, of the messages' creation.")
    channel: str
    direction: str
    country: str | None = Field(
        description="ISO 3166-1 alpha-2 of the people's numbers; `other`: the countries "
                    "of that day, channel and direction with too few people each, "
                    "together; null: e-mail addresses, numbers of no country and erased "
                    "people.")
    messages: int
    segments: int
    delivered: int
    failed: int = Field(description="Undelivered, failed, expired or rejected.")
    subjects: int = Field(description="Distinct people, counted low rather than high.")


class TrafficTotalsOut(BaseModel):
    """Sums of the buckets shown only: what is left out is in no total."""

    messages: int
    segments: int
    delivered: int
    failed: int


class TrafficOut(BaseModel):
    first_day: date
    last_day: date
    min_subjects: int = Field(description="k: no bucket of fewer people is shown.")
    built_through: date | None = Field(
        description="The newest day counted; later days are not counted yet.")
    buckets: list[TrafficBucketOut]
    totals: TrafficTotalsOut
