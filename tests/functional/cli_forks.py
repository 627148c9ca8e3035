"""``tidings`` commands in processes forked from one that has imported the CLI already.

Each command of the real console script spends about a second importing what it runs
(SQLAlchemy, the models, the runtime) before it does anything: the suite's hundreds of
commands spent minutes on it (`make test` went over ten minutes). A *fork server*, one
per test process, imports those modules once; each command is then a fork of it that
takes the command's environment, working folder, standard input and output, runs the
console script's ``main`` and exits with its code: a process of its own, as the shell
would start, less the imports. ``TIDINGS_TEST_CLI_EXEC=1`` runs every command with
``exec`` instead (what the fork server must agree with). Tests of the CLI's own start
(what it imports, how fast) start it themselves.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

# The fork server: reads one JSON request a line on one pipe, forks, answers on another
# with the child's pid, then its exit status. Single-threaded, so forking it is safe.
_SERVER = r"""
import json, os, sys
import tidings.cli.main
for name in ("tidings.runtime", "tidings.cli.accounts", "tidings.cli.connectors",
             "tidings.cli.numbers", "tidings.cli.users", "tidings.cli.audit",
             "tidings.cli.mail", "tidings.cli.serve", "tidings.cli.sandbox",
             "tidings.cli.smpp_credentials", "tidings.cli.send", "tidings.cli.webhooks"):
    __import__(name)
REQUESTS, ANSWERS = int(sys.argv[1]), int(sys.argv[2])
requests, answers = os.fdopen(REQUESTS, "r"), os.fdopen(ANSWERS, "w")
for line in requests:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            for fd, path, flags in ((0, request["stdin"], os.O_RDONLY),
                                    (1, request["stdout"], os.O_WRONLY | os.O_TRUNC),
                                    (2, request["stderr"], os.O_WRONLY | os.O_TRUNC)):
                opened = os.open(path, flags)
                os.dup2(opened, fd)
                os.close(opened)
            os.close(REQUESTS), os.close(ANSWERS)
            sys.argv = ["tidings", *request["args"]]
            code = 0
            try:
                tidings.cli.main.main()
            except SystemExit as exit_:
                given = exit_.code
                code = given if isinstance(given, int) else (0 if given is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)
    answers.write(f"{pid}\n"), answers.flush()
    _, status = os.waitpid(pid, 0)
    answers.write(f"{os.waitstatus_to_exitcode(status)}\n"), answers.flush()
"""


class ForkServer:
    def __init__(self) -> None:
        requests_read, self._requests = os.pipe()
        self._answers, answers_write = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(requests_read), str(answers_write)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(requests_read, answers_write))
        os.close(requests_read), os.close(answers_write)
        self._lock = threading.Lock()
        self._buffer = b""

    def run(self, args: Sequence[str], env: Mapping[str, str], *, timeout: float,
            stdin: str | None) -> subprocess.CompletedProcess[str]:
        with self._lock, tempfile.TemporaryDirectory(prefix="tidings-cli-") as folder:
            paths = {name: str(Path(folder) / name) for name in ("stdin", "stdout", "stderr")}
            Path(paths["stdin"]).write_text(stdin or "")
            Path(paths["stdout"]).touch(), Path(paths["stderr"]).touch()
            request = {"args": list(args), "env": dict(env), "cwd": os.getcwd(), **paths}
            os.write(self._requests, (json.dumps(request) + "\n").encode())
            pid = int(self._line(timeout=30))
            try:
                code = int(self._line(timeout=timeout))
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self._line(timeout=30)
                raise subprocess.TimeoutExpired(["tidings", *args], timeout) from None
            return subprocess.CompletedProcess(
                ["tidings", *args], code, Path(paths["stdout"]).read_text(errors="replace"),
                Path(paths["stderr"]).read_text(errors="replace"))

    def _line(self, *, timeout: float) -> str:
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._answers], [], [], timeout)
            if not ready:
                raise subprocess.TimeoutExpired("tidings", timeout)
            chunk = os.read(self._answers, 4096)
            if not chunk:
                raise RuntimeError("the CLI fork server stopped")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        os.close(self._requests)
        self._process.wait(timeout=30)
        os.close(self._answers)


_server: ForkServer | None = None


def run_forked(args: Sequence[str], env: Mapping[str, str], *, timeout: float,
               stdin: str | None) -> subprocess.CompletedProcess[str]:
    global _server
    if _server is None:
        _server = ForkServer()
        atexit.register(_server.close)
    return _server.run(args, env, timeout=timeout, stdin=stdin)


def by_exec() -> bool:
    return os.environ.get("TIDINGS_TEST_CLI_EXEC") == "1"
