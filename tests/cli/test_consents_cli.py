"""``tidings consents``: the operator records an account's consent event, shows a
person's history and state, imports a CSV; garbage refused with the API's codes,
writing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tidings.cli.main import cli

Env = dict[str, str | None]
NUMBER = "+12025550173"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
HEADER = "number,email,channel,purpose,mechanism,source,evidence_ref"


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
def account(env: Env) -> str:
    code, out = run(env, "accounts", "create", "--name", "Acme", "--json")
    assert code == 0, out
    return str(json.loads(out)["id"])


def record(env: Env, account: str, *more: str) -> tuple[int, str]:
    return run(env, "consents", "record", "--account", account, "--channel", "sms",
               "--purpose", "marketing", "--source", "web_form", *more)


def test_an_event_is_recorded_and_shown_with_the_state(env: Env, account: str) -> None:
    code, out = record(env, account, "--number", NUMBER, "--mechanism", "opt_in",
                       "--evidence", "signed form 12", "--text-version", "v2",
                       "--text-sha256", SHA, "--json")
    assert code == 0, out
    made = json.loads(out)
    assert (made["subject"], made["mechanism"], made["evidence_ref"]) == (
        {"number": NUMBER}, "opt_in", "signed form 12")
    assert made["captured_by"].startswith("operator:cli:")
    code, out = run(env, "consents", "show", "--account", account, "--number", NUMBER)
    assert code == 0, out
    assert made["id"] in out
    assert "sms marketing: IN FORCE (opt_in since" in out
    code, out = run(env, "consents", "show", "--account", account, "--number", NUMBER,
                    "--channel", "sms", "--json")
    shown = json.loads(out)
    assert [s["in_force"] for s in shown["state"]] == [True]
    code, out = run(env, "consents", "show", "--account", account, "--number",
                    "+12025550174")
    assert (code, out) == (0, "No consent events.\n")


@pytest.mark.parametrize(("args", "code"), [
    (("--number", NUMBER, "--mechanism", "soft_opt_in", "--evidence", "x"),
     "soft_opt_in_email_only"),
    (("--email", "ann@example.com", "--mechanism", "opt_in", "--evidence", "x"),
     "subject_channel_mismatch"),
    (("--number", "12025550173", "--mechanism", "opt_in", "--evidence", "x"),
     "invalid_phone_number"),
    (("--number", NUMBER, "--mechanism", "opt_in", "--evidence", "   "), "validation_failed"),
    (("--number", NUMBER, "--mechanism", "opt_in", "--evidence", "x", "--text-sha256",
      "abc"), "validation_failed"),
    (("--number", NUMBER, "--mechanism", "opt_in", "--evidence", "x", "--captured-at",
      "2999-01-01T00:00:00Z"), "captured_at_in_future"),
])
def test_garbage_is_refused_with_the_apis_code_and_nothing_written(
        env: Env, account: str, args: tuple[str, ...], code: str) -> None:
    exit_code, out = record(env, account, *args)
    assert exit_code == 1, out
    assert f"({code})" in out
    _, shown = run(env, "consents", "show", "--account", account, "--number", NUMBER)
    assert shown == "No consent events.\n"


def test_a_choice_outside_the_vocabulary_is_refused_before_anything_runs(
        env: Env, account: str) -> None:
    exit_code, out = record(env, account, "--number", NUMBER, "--mechanism", "erased",
                            "--evidence", "x")
    assert exit_code == 2
    assert "erased" in out


def test_a_csv_is_imported_and_its_bad_rows_reported(env: Env, account: str,
                                                    tmp_path: Path) -> None:
    good = tmp_path / "consents.csv"
    good.write_text(f"{HEADER}\n{NUMBER},,sms,marketing,opt_in,import,list row 1\n"
                    "+12025550174,,sms,marketing,opt_in,import,\n")
    code, out = run(env, "consents", "import", "--account", account, str(good), "--json")
    assert code == 0, out
    done = json.loads(out)
    assert (done["imported"], done["refused"]) == (1, 1)
    assert done["errors"][0]["code"] == "evidence_ref_missing"
    code, out = run(env, "consents", "import", "--account", account, str(good))
    assert code == 0
    assert "imported 1, refused 1" in out
    assert "row 3: evidence_ref:" in out

    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\n{NUMBER},,sms,marketing,opt_in,,proof\n")
    code, out = run(env, "consents", "import", "--account", account, str(bad))
    assert code == 1
    assert "row 2: source:" in out
    assert "(no_rows_imported)" in out
    _, shown = run(env, "consents", "show", "--account", account, "--number", NUMBER,
                   "--json")
    assert len(json.loads(shown)["events"]) == 2  # one a good import; the bad file none
