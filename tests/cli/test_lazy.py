"""The CLI imports a command's code only when that command runs (``cli/lazy.py``)."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from tidings.cli.lazy import load
from tidings.cli.main import COMMANDS, cli

HEAVY = ("sqlalchemy", "fastapi", "alembic", "uvicorn", "tidings.runtime", "tidings.storage.db")


def modules_after(*args: str) -> set[str]:
    """The modules a fresh interpreter holds after ``tidings ARGS``."""
    script = ("import sys\nfrom tidings.cli.main import cli\n"
              f"cli({list(args)!r}, standalone_mode=False)\n"
              "print('\\n'.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=120)
    return set(result.stdout.split("\n"))


@pytest.mark.parametrize("args", [("--help",), ("send", "--help"),
                                  ("webhooks", "listen", "--help"), ("smsc-sim", "--help")])
def test_help_and_light_commands_import_no_database_or_web_stack(
        args: tuple[str, ...]) -> None:
    loaded = modules_after(*args)
    assert not [name for name in HEAVY if name in loaded]


def test_the_root_help_imports_no_command_module() -> None:
    loaded = modules_after("--help")
    assert not {path.partition(":")[0] for path, _ in COMMANDS.values()} & loaded


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_short_help_is_the_commands_own(name: str) -> None:
    path, short_help = COMMANDS[name]
    command = load(path)
    assert command.get_short_help_str(limit=1000) == short_help
    assert cli.get_command(click.Context(cli), name) is command
