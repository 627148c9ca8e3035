"""``POST /v1/messages/batch`` for ``tidings send``: standard library only, so that the
command starts quickly."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]  # the BatchResponse, or a problem+json
    replayed: bool  # the server had this Idempotency-Key: an earlier run sent the chunk

    def problem(self) -> str:
        """The problem as one line: status, code, detail and the fields the API named."""
        fields = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}"
                           for e in self.body.get("errors") or [])
        text = f"{self.status} {self.body.get('code', '')}: {self.body.get('detail', '')}"
        return f"{text} ({fields})" if fields else text


class Unreachable(Exception):
    """No answer: the server is down, the address is wrong, or it took too long."""


def post_batch(url: str, api_key: str, payload: dict[str, Any], *,
               idempotency_key: str) -> Answer:
    request = urllib.request.Request(  # noqa: S310 - the operator chooses the URL
        f"{url.rstrip('/')}/v1/messages/batch", data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                 "Idempotency-Key": idempotency_key},
        method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            return Answer(response.status, _json(response.read()), replayed)
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, _json(exc.read()), replayed=False)
    except urllib.error.URLError as exc:
        raise Unreachable(f"cannot reach {url}: {exc.reason}") from None
    except TimeoutError:
        raise Unreachable(f"no answer from {url} in {TIMEOUT_SECONDS} s") from None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return {"detail": raw[:200].decode(errors="replace")}
    return data if isinstance(data, dict) else {"detail": str(data)[:200]}
