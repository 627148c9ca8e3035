"""``tidings policies``: the operator publishes a version from a file, lists the versions
and shows one with each account's answer, resolves an objection; garbage is refused
with the API's codes and changes nothing. The notices go out by the server's job: here
the CLI's runtime runs it, as a worker would."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tidings.cli.main import cli
from tidings.cli.policies import policies
from tidings.core.settings import Settings
from tidings.runtime import close_runtime, open_runtime

Env = dict[str, str | None]
TEXT = "# Terms of Service\n\nThe new terms, whole.\n"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env: Env = {"TIDINGS_DATA_DIR": str(tmp_path / "data"), "TIDINGS_DATABASE_URL": None,
                "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None}
    assert CliRunner().invoke(cli, ["migrate"], env=env).exit_code == 0
    return env


def run(env: Env, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(policies, list(args), env=env, input=stdin)
    return result.exit_code, result.output


def account(env: Env, name: str) -> str:
    result = CliRunner().invoke(cli, ["accounts", "create", "--name", name, "--json"],
                                env=env)
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["id"])


def text_file(tmp_path: Path, text: str = TEXT) -> str:
    path = tmp_path / f"{hashlib.sha256(text.encode()).hexdigest()[:12]}.md"
    path.write_text(text)
    return str(path)


def drain(env: Env) -> None:
    """What the server's workers do: the notifying job runs."""
    settings = Settings(data_dir=Path(str(env["TIDINGS_DATA_DIR"])))

    async def work() -> None:
        rt = await open_runtime(settings, start_background=False)
        try:
            await rt.worker_pool().drain()
        finally:
            await close_runtime(rt)
    asyncio.run(work())


def publish_args(tmp_path: Path, *more: str) -> list[str]:
    return ["publish", "--kind", "terms", "--version", "2027-01", "--title",
            "Terms of Service", "--summary", "Liability capped at a year's fees.",
            "--text-file", text_file(tmp_path), *more]


def test_a_version_published_listed_shown_and_an_objection_resolved(
        env: Env, tmp_path: Path) -> None:
    acme = account(env, "Acme")
    effective = (datetime.now(UTC) + timedelta(days=45)).replace(microsecond=0)
    code, out = run(env, *publish_args(tmp_path, "--effective-at", effective.isoformat()),
                    "--json")
    assert code == 0, out
    made = json.loads(out)
    assert (made["kind"], made["version"], made["status"], made["notifying"]) == (
        "terms", "2027-01", "upcoming", True)
    assert made["sha256"] == hashlib.sha256(TEXT.encode()).hexdigest()
    assert datetime.fromisoformat(made["effective_at"]) == effective
    drain(env)
    code, out = run(env, "list")
    assert code == 0, out
    assert made["id"] in out
    assert "notified 1 (undeliverable 1), pending 1" in out  # made by the CLI: no owner
    code, out = run(env, "show", made["id"])
    assert code == 0, out
    assert f"{acme} (Acme): pending; not sent: no_active_owner" in out
    assert "what changes: Liability capped at a year's fees." in out
    code, out = run(env, "show", made["id"], "--json")
    assert json.loads(out)["text"] == TEXT
    code, out = run(env, "resolve", made["id"], acme, "--outcome", "upheld")
    assert code == 1
    assert "no_objection" in out
    code, out = run(env, "list", "--kind", "dpa", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out = run(env, "list", "--status", "upcoming", "--json")
    assert [v["id"] for v in json.loads(out)] == [made["id"]]


def test_garbage_is_refused_and_changes_nothing(env: Env, tmp_path: Path) -> None:
    soon = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    for args, expected in [
        (publish_args(tmp_path, "--effective-at", soon), "notice_too_short"),
        (publish_args(tmp_path, "--effective-at", "next week"), "effective_at:"),
        (["publish", "--kind", "cookies", "--version", "1", "--title", "T", "--summary",
          "S", "--text-file", text_file(tmp_path)], "Invalid value for '--kind'"),
        (["publish", "--kind", "dpa", "--version", "1/2", "--title", "T", "--summary",
          "S", "--text-file", text_file(tmp_path)], "version:"),
        (["publish", "--kind", "dpa", "--version", "1", "--title", "T", "--summary", "S",
          "--text-file", text_file(tmp_path, "\n")], "invalid_text"),
        (["publish", "--kind", "dpa", "--version", "1", "--title", "T", "--summary", "S",
          "--text-file", str(binary)], "not UTF-8"),
        (["publish", "--kind", "dpa", "--version", "1", "--title", "T", "--summary", "S",
          "--text-file", str(tmp_path / "missing.md")], "No such file"),
        (["show", "pol_nothing"], "policy_not_found"),
        (["resolve", "pol_nothing", "acc_x", "--outcome", "upheld"], "policy_not_found"),
        (["resolve", "pol_nothing", "acc_x", "--outcome", "maybe"], "Invalid value"),
    ]:
        code, out = run(env, *args)
        assert code != 0, args
        assert expected in out, (args, out)
    code, out = run(env, "list", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out = run(env, *publish_args(tmp_path), "--json")
    assert code == 0, out
    code, out = run(env, *publish_args(tmp_path))
    assert (code, "policy_version_exists" in out) == (1, True)
