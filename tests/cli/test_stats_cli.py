"""``tidings stats``: ``build`` counts the settled days now, ``traffic`` prints what the
operator API answers (a table, JSON or CSV); garbage refused with the API's codes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from tests.usage_stats.conftest import US, numbers, seed
from tidings.cli.main import cli
from tidings.core import ids
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.runtime import close_runtime, open_runtime

Env = dict[str, str | None]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env: Env = {"TIDINGS_DATA_DIR": str(tmp_path / "data"), "TIDINGS_DATABASE_URL": None,
                "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None}
    assert CliRunner().invoke(cli, ["migrate"], env=env).exit_code == 0
    return env


def run(env: Env, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


@pytest.fixture
def busy_day(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> date:
    """A week ago, 6 US people written to twice each by an account made with the CLI."""
    code, out = run(env, "accounts", "create", "--name", "Acme", "--json")
    assert code == 0, out
    account = json.loads(out)["id"]
    noon = datetime.combine(datetime.now(UTC).date() - timedelta(days=7),
                            datetime.min.time(), UTC) + timedelta(hours=12)
    clock = FakeClock(noon)

    async def write() -> None:
        rt = await open_runtime(Settings(data_dir=tmp_path / "data"), clock=clock,
                                start_background=False)
        try:
            await seed(rt, account, numbers(US, 6), each=2)
        finally:
            await close_runtime(rt)

    with monkeypatch.context() as patched:  # the ids of a week ago
        patched.setattr(ids, "time", SimpleNamespace(
            time_ns=lambda: int(clock.now().timestamp() * 1_000_000) * 1000))
        asyncio.run(write())
    return noon.date()


def test_build_then_traffic_as_a_table_json_and_csv(env: Env, busy_day: date) -> None:
    code, out = run(env, "stats", "build", "--json")
    assert code == 0, out
    built = json.loads(out)
    # The newest settled day (3 days over) first, down to the oldest message's.
    newest = date.fromisoformat(built[0]["day"])
    assert [b["day"] for b in built] == [
        (newest - timedelta(days=n)).isoformat() for n in range(len(built))]
    assert built[-1]["day"] == busy_day.isoformat()
    assert [b["messages"] for b in built] == [0] * (len(built) - 1) + [12]
    code, out = run(env, "stats", "build")
    assert (code, out.strip()) == (0, "no day is due")

    day = busy_day.isoformat()
    code, out = run(env, "stats", "traffic", "--from", day, "--to", day)
    assert code == 0, out
    assert "buckets of at least 5 people" in out
    [line] = [row for row in out.splitlines() if row.startswith(f"{day}  sms")]
    assert line.split() == [day, "sms", "outbound", "US", "12", "12", "12", "0", "6"]
    code, out = run(env, "stats", "traffic", "--from", day, "--to", day, "--json")
    assert code == 0, out
    assert json.loads(out)["totals"]["messages"] == 12
    code, out = run(env, "stats", "traffic", "--from", day, "--to", day, "--csv",
                    "--channel", "sms", "--country", "US")
    assert code == 0, out
    assert list(csv.reader(io.StringIO(out)))[1] == [day, "sms", "outbound", "US", "12", "12",
                                                     "12", "0", "6"]


@pytest.mark.parametrize(("args", "says"), [
    (["--from", "garbage", "--to", "2027-03-10"], "(invalid_date)"),
    (["--from", "2027-03-11", "--to", "2027-03-10"], "(invalid_range)"),
    (["--from", "2020-01-01", "--to", "2027-03-10"], "(range_too_long)"),
    (["--from", "2027-03-10", "--to", "2027-03-10", "--country", "usa"], "--country"),
    (["--from", "2027-03-10", "--to", "2027-03-10", "--channel", "fax"], "fax"),
    (["--to", "2027-03-10"], "--from"),
])
def test_garbage_is_refused(env: Env, args: list[str], says: str) -> None:
    code, out = run(env, "stats", "traffic", *args)
    assert code != 0
    assert says in out
