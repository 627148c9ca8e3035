"""The signed, expiring token of an address-confirmation link.

Like the log-in challenge (``users/login.py``) it holds nothing secret: the user id and
an expiry, with a MAC under a platform key over them and the user's current address
index. A changed address voids the link; anyone may read a token, nobody can make one.
"""

from __future__ import annotations

import base64
import hmac
import re
from datetime import datetime, timedelta

from tidings.storage.vault import TenantKeys
from tidings.web.errors import InvalidRequest

CONFIRMATION_LIFETIME = timedelta(days=3)
PURPOSE = "signup.address_confirmation"
MAX_TOKEN_CHARS = 300
_BODY = re.compile(r"(usr_[0-9a-z]{1,40})\.([0-9]{1,12})\.([0-9a-f]{64})")


def make_token(platform: TenantKeys, *, user_id: str, email_index: str,
               expires_at: datetime) -> str:
    body = f"{user_id}.{int(expires_at.timestamp())}"
    mac = _mac(platform, body, email_index)
    return base64.urlsafe_b64encode(f"{body}.{mac}".encode()).decode().rstrip("=")


def token_user(token: str) -> tuple[str, int, str]:
    """(user id, expiry as a Unix time, MAC) of a well-formed token; ``invalid_token``
    otherwise. The MAC is checked by ``check_token`` once the user's index is known."""
    if len(token) > MAX_TOKEN_CHARS:
        raise invalid_token()
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:
        raise invalid_token() from None
    match = _BODY.fullmatch(text)
    if match is None:
        raise invalid_token()
    return match.group(1), int(match.group(2)), match.group(3)


def check_token(platform: TenantKeys, token: str, *, email_index: str, now: datetime) -> None:
    user_id, expires, mac = token_user(token)
    if not hmac.compare_digest(mac, _mac(platform, f"{user_id}.{expires}", email_index)):
        raise invalid_token()
    if now.timestamp() >= expires:
        raise InvalidRequest("The confirmation link has expired; sign up again for a new "
                             "one.", code="token_expired", parameter="token")


def _mac(platform: TenantKeys, body: str, email_index: str) -> str:
    return platform.fingerprint(f"{body}.{email_index}".encode(), purpose=PURPOSE)


def invalid_token() -> InvalidRequest:
    return InvalidRequest("The confirmation token is not valid.", code="invalid_token",
                          parameter="token")
