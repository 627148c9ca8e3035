"""``tidings stats``: the platform's traffic, de-identified (docs/usage-stats.md).

``traffic`` prints what ``GET /v1/operator/stats/traffic`` answers: buckets of at least
k people (``TIDINGS_STATS_MIN_SUBJECTS``), the smaller ones merged or left out, and
totals of what is shown only. ``build`` counts the days that are due now, as the
workers' chore does every ten minutes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tidings.cli.common import emit, fail, with_runtime

if TYPE_CHECKING:
    from tidings.runtime import Runtime
    from tidings.usage_stats.schemas import TrafficOut

CHANNELS = ("sms", "email", "whatsapp")


@click.group("stats")
def stats() -> None:
    """Traffic statistics: de-identified counts, never fewer than k people."""


@stats.command("traffic")
@click.option("--from", "first", required=True, metavar="YYYY-MM-DD",
              help="The first day (UTC).")
@click.option("--to", "last", required=True, metavar="YYYY-MM-DD",
              help="The last day, included; at most 366 days after --from.")
@click.option("--channel", type=click.Choice(CHANNELS), help="One channel only.")
@click.option("--country", metavar="CC", help="Two capital letters, or other.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, as the API's text/csv.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def traffic(first: str, last: str, channel: str | None, country: str | None, as_csv: bool,
            as_json: bool) -> None:
    """The buckets that may be shown, by day, channel, direction and country."""
    import re

    from tidings.usage_stats.api import COUNTRY_PATTERN

    if country is not None and not re.fullmatch(COUNTRY_PATTERN, country):
        fail("--country takes two capital letters (US) or other")

    async def work(rt: Runtime) -> None:
        from tidings.usage_stats.api import day_range, traffic_csv, traffic_report

        start, end = day_range(first, last, today=rt.clock.now().date())
        report = await traffic_report(rt, first=start, last=end, channel=channel,
                                      country=country)
        if as_csv:
            click.echo(traffic_csv(report), nl=False)
            return
        emit(report.model_dump(mode="json"), as_json=as_json, text=_table(report))

    with_runtime(work)


@stats.command("build")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def build(as_json: bool) -> None:
    """Count the settled days not counted yet, now."""

    async def work(rt: Runtime) -> None:
        from tidings.usage_stats.service import build_due

        built = await build_due(rt)
        rows = [{"day": b.day.isoformat(), "buckets": b.buckets, "messages": b.messages,
                 "seconds": b.seconds} for b in built]
        text = "\n".join(f"{r['day']}  {r['buckets']} buckets  {r['messages']:,} messages  "
                         f"{r['seconds']} s" for r in rows) or "no day is due"
        emit(rows, as_json=as_json, text=text)

    with_runtime(work)


def _table(report: TrafficOut) -> str:
    lines = [f"{report.first_day} to {report.last_day}: buckets of at least "
             f"{report.min_subjects} people (counted through "
             f"{report.built_through or 'no day yet'})",
             f"{'day':<10}  {'channel':<8}  {'direction':<9}  {'country':<7}  "
             f"{'messages':>9}  {'segments':>9}  {'delivered':>9}  {'failed':>7}  "
             f"{'people':>7}"]
    for b in report.buckets:
        lines.append(f"{b.day.isoformat():<10}  {b.channel:<8}  {b.direction:<9}  "
                     f"{b.country or '-':<7}  {b.messages:>9,}  {b.segments:>9,}  "
                     f"{b.delivered:>9,}  {b.failed:>7,}  {b.subjects:>7,}")
    t = report.totals
    lines.append(f"{'shown':<40}  {t.messages:>9,}  {t.segments:>9,}  {t.delivered:>9,}  "
                 f"{t.failed:>7,}")
    return "\n".join(lines)
