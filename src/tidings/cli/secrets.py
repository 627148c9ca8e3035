"""Secrets on the command line without leaving them in the process list or the history.

``@secret_option("password", ...)`` gives a command three ways to take one secret:
``--password VALUE`` (visible to other users in ``ps`` and kept in the shell history:
for throw-away values), ``--password-file PATH`` and ``--password-env NAME``; with none
of them and a terminal on stdin, a hidden prompt. The command receives the secret as
its ``password`` argument, read before it touches the database, so a bad source
creates nothing.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
Condition = Callable[[dict[str, Any]], bool]


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def secret_option(name: str, *, what: str, required: bool, help: str = "",
                  ask_if: Condition | None = None) -> Callable[[F], F]:
    """Options ``--NAME``, ``--NAME-file``, ``--NAME-env`` giving the argument ``NAME``.

    ``what`` names the secret in help and prompts ("the bind password"), ``help`` adds
    to the help of ``--NAME``. A secret that is
    not ``required`` is empty when none is given and nobody can be asked; ``ask_if``
    says, from the command's other arguments, whether it is wanted at all.
    """
    key, flag = name.replace("-", "_"), f"--{name}"

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def with_secret(**kwargs: Any) -> Any:
            sources = (kwargs.pop(key), kwargs.pop(f"{key}_file"), kwargs.pop(f"{key}_env"))
            wanted = ask_if is None or ask_if(kwargs)
            kwargs[key] = _resolve(flag, what, *sources, required=required, wanted=wanted)
            return command(**kwargs)

        for option in reversed((
            click.option(flag, key, default=None, metavar="VALUE",
                         help=f"{_sentence(what)}{help}; visible in the process list: "
                              f"prefer {flag}-file or {flag}-env."),
            click.option(f"{flag}-file", f"{key}_file", default=None,
                         type=click.Path(exists=True, dir_okay=False, readable=True,
                                         path_type=Path),
                         help=f"Read {what} from this file (one line)."),
            click.option(f"{flag}-env", f"{key}_env", default=None, metavar="NAME",
                         help=f"Read {what} from this environment variable. With none of "
                              f"the three, it is asked for (hidden) on a terminal."),
        )):
            option(with_secret)
        return with_secret  # type: ignore[return-value]  # same call signature as command

    return decorate


def _resolve(flag: str, what: str, value: str | None, path: Path | None, env: str | None,
             *, required: bool, wanted: bool) -> str:
    given = [source for source in (value, path, env) if source is not None]
    if len(given) > 1:
        raise click.UsageError(f"Give {what} one way: {flag}, {flag}-file or {flag}-env.")
    if value is not None:
        return value
    if path is not None:
        return _from_file(f"{flag}-file", path)
    if env is not None:
        return _from_environment(f"{flag}-env", env)
    if wanted and stdin_is_terminal():
        text: str = click.prompt(_sentence(what) + ("" if required else " (empty: none)"),
                                 hide_input=True, default=None if required else "",
                                 show_default=False)
        return text
    if required:
        raise click.UsageError(f"Missing {what}: give {flag}-file, {flag}-env or {flag}.")
    return ""


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _from_file(hint: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}",
                                 param_hint=hint) from None
    except UnicodeDecodeError:  # the error's text would quote the secret's bytes
        raise click.BadParameter(f"{path} is not UTF-8 text", param_hint=hint) from None
    secret = text.rstrip("\r\n")  # the newline an editor or `echo` leaves, not more
    if not secret:
        raise click.BadParameter(f"{path} is empty", param_hint=hint)
    return secret


def _from_environment(hint: str, name: str) -> str:
    secret = os.environ.get(name)
    if secret is None:
        raise click.BadParameter(f"the environment variable {name} is not set",
                                 param_hint=hint)
    if not secret:
        raise click.BadParameter(f"the environment variable {name} is empty",
                                 param_hint=hint)
    return secret
