"""The README's "two-minute tour", pasted into a shell as a reader would, against a real
``tidings serve``: the test fails when the README drifts from what Tidings does.

What differs from a reader's terminal, and only that: the server listens on a free port
instead of 8000 and the receiver on another instead of 9000 (the URLs in the commands
are rewritten, and ``TIDINGS_PORT`` tells ``tidings send``), ``.venv/bin/`` is the
venv running the tests, and the shell runs in a fresh folder holding the server's
``data``. The ``tdk_...``, ``tds_...``, ``msg_...``, ``acc_...`` and ``Tmp-pass-word``
placeholders are filled, as a reader fills them, from the last key, token, id or
temporary password printed before.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.server import TIDINGS, TidingsServer, free_port, tidings_env

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
DONE = "__TOUR_STEP_DONE__"
STEP_TIMEOUT_SECONDS = 120.0
WAIT_SECONDS = 30.0
PLACEHOLDERS = {"tdk_...": re.compile(r"tdk_[A-Za-z0-9_\-]+"),
                "tds_...": re.compile(r"tds_[A-Za-z0-9_\-]+"),
                "Tmp-pass-word": re.compile(r"(?<=temporary_password: )[A-Za-z0-9\-]+"),
                "msg_...": re.compile(r"msg_[0-9a-z]+"),
                "acc_...": re.compile(r"acc_[0-9a-z]{26}")}
PROBLEM = "tidings.dev/problems/"


def tour_blocks() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## A two-minute tour", 1)[1]
    return re.findall(r"```sh\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)


def shell_commands(block: str) -> list[str]:
    """The block's commands, whole: continued lines, open quotes and here-documents
    joined; comment lines and blank lines dropped."""
    commands: list[str] = []
    current: list[str] = []
    heredoc: str | None = None
    for line in block.splitlines():
        if heredoc is not None:
            current.append(line)
            if line == heredoc:
                heredoc = None
                commands.append("\n".join(current))
                current = []
            continue
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current.append(line)
        started = re.search(r"<<-?\s*'?(\w+)'?", line)
        if started:
            heredoc = started.group(1)
        elif _complete("\n".join(current)):
            commands.append("\n".join(current))
            current = []
    assert not current, f"unfinished command in the README: {current}"
    assert heredoc is None, f"unfinished here-document in the README: {heredoc}"
    return commands


def _complete(text: str) -> bool:
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:  # an open quote: the command goes on on the next line
        return False
    return True


class ReaderShell:
    """One bash reading commands on stdin, as a terminal would; background jobs (the
    webhook receiver) print into the same output."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile"], cwd=cwd, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.transcript = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def run(self, command: str) -> tuple[int, str]:
        """Run one command; its exit status and what was printed meanwhile."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\nprintf '\\n%s %d\\n' {DONE} \"$?\"\n")
        self.proc.stdin.flush()
        output = ""
        deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
        while True:
            line = self._next_line(deadline, command)
            if line.startswith(DONE):
                self.transcript += output
                return int(line.split()[1]), output
            output += line

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while text not in self.transcript:
            self.transcript += self._next_line(deadline, f"waiting for {text!r}")

    def _next_line(self, deadline: float, what: str) -> str:
        try:
            return self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no end to {what}\n{self.transcript}") from None

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        finally:  # the receiver too, if a step failed before it was stopped
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def server(home: Path) -> Iterator[TidingsServer]:
    # `make serve` lets webhooks go to loopback addresses, as the tour's receiver is.
    env = tidings_env(home / "data", webhook_allow_private="true")
    with TidingsServer(home / "data", env, log_path=home / "server.log") as running:
        yield running


def reader_command(command: str, server: TidingsServer, receiver_port: int,
                   transcript: str) -> str:
    command = (command.replace(".venv/bin/", f"{Path(TIDINGS).parent}/")
               .replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
               .replace("127.0.0.1:9000", f"127.0.0.1:{receiver_port}")
               .replace("--port 9000", f"--port {receiver_port}"))
    for placeholder, pattern in PLACEHOLDERS.items():
        if placeholder in command:
            printed = pattern.findall(transcript)
            assert printed, f"nothing printed before to fill {placeholder} in {command}"
            command = command.replace(placeholder, printed[-1])
    return command


def test_every_step_of_the_readme_tour_works_when_pasted(home: Path,
                                                         server: TidingsServer) -> None:
    serve, steps = tour_blocks()
    assert shell_commands(serve)[0].startswith("make serve")  # the server we started
    assert (f"Tidings listens on {server.url}, database {home / 'data' / 'tidings.db'}"
            in server.log_text())

    env = tidings_env(home / "data", port=server.port)
    del env["TIDINGS_DATA_DIR"]  # the reader's CLI finds ./data, as the server's folder
    shell, receiver_port = ReaderShell(home, env), free_port()
    try:
        commands = shell_commands(steps)
        for number, command in enumerate(commands):
            if number == len(commands) - 1:  # before the receiver is stopped
                shell.wait_for('"status": "delivered"')
                shell.wait_for("message.inbound")
            pasted = reader_command(command, server, receiver_port, shell.transcript)
            status, output = shell.run(pasted)
            assert status == 0, f"{pasted}\n{output}"
            for failure in ("Traceback", "error:", PROBLEM):
                assert failure not in output, f"{pasted}\n{output}"
            if command.endswith("&"):
                shell.wait_for("listening for webhooks on")
    finally:
        shell.close()

    transcript = shell.transcript
    assert "api_key: tdk_" in transcript
    assert "accepted 2 of 2 rows, rejected 0" in transcript  # tidings send
    assert '"direction":"inbound"' in transcript  # the inbound message, listed
    assert re.search(r'message\.inbound .*"body": "Hi"', transcript), transcript
    assert "\nok\n" in transcript  # tidings audit verify
    assert '"must_change_password":true' in transcript  # Ann's first log-in
