"""``tidings webhooks listen``: a webhook receiver for development and the README tour.

It prints each event it gets on one line (the type, then its ``data`` as JSON) and
answers 204; with the account's secret it also checks each ``Tidings-Signature``.
Standard library only: it starts at once and needs no database.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click

from tidings.cli.secrets import secret_option
from tidings.webhooks.signing import SIGNATURE_HEADER, SignatureError, verify

MAX_BODY_BYTES = 1024 * 1024


@click.group("webhooks")
def webhooks() -> None:
    """Receive webhooks while you develop."""


@webhooks.command("listen")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=9000, show_default=True,
              help="0: any free port (printed).")
@secret_option("secret", what="the account's webhook secret (whsec_…)", required=False,
               help=", to check each signature", ask_if=lambda _: False)
def listen(host: str, port: int, secret: str) -> None:
    """Print every webhook POSTed to http://HOST:PORT/ (any path) until Ctrl+C."""
    try:
        server = _Receiver((host, port), secret)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") \
            from None
    click.echo(f"listening for webhooks on http://{host}:{server.server_address[1]}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class _Receiver(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], secret: str) -> None:
        super().__init__(address, _Handler)
        self.secret = secret


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
        body = self.rfile.read(length)
        click.echo(f"{_describe(body)}{self._signature(body)}")
        self.send_response(204)
        self.end_headers()

    def _signature(self, body: bytes) -> str:
        if not self.server.secret:
            return ""
        try:
            verify(self.server.secret, body, self.headers.get(SIGNATURE_HEADER, ""),
                   now=int(time.time()))
        except SignatureError as exc:
            return f"  [signature BAD: {exc}]"
        return "  [signature ok]"

    def log_message(self, *_: object) -> None:
        """One line per event is printed by do_POST; no access log besides."""


def _describe(body: bytes) -> str:
    try:
        event = json.loads(body)
        return f"{event['type']} {json.dumps(event['data'], ensure_ascii=False)}"
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")
