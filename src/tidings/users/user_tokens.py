"""Short-lived tokens that name a user, signed with a platform key: the log-in
challenge between the password and the code, a password-reset link.

They hold nothing secret: the user id, an expiry and a keyed digest of what the token
is bound to: by default the current password hash (salted anew at every change), so
that a password change voids every token made before it (a reset link works once); a
sign-up's confirmation link binds the address instead (``bound_to_address``). Each use
signs under its own ``purpose``: a challenge is no reset link.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tidings.storage.vault import TenantKeys
from tidings.users.models import User

MAX_TOKEN_CHARS = 400
EPOCH_PURPOSE = "users.password_epoch"
ADDRESS_PURPOSE = "users.address_epoch"


class TokenRefused(ValueError):
    """``expired`` True: genuine but too old; False: not a token of this purpose."""

    def __init__(self, *, expired: bool) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


Binding = Callable[[TenantKeys, User], str]  # what must not change for a token to hold


def password_epoch(keys: TenantKeys, user: User) -> str:
    return keys.fingerprint(user.password_hash.encode(), purpose=EPOCH_PURPOSE)[:16]


def bound_to_address(keys: TenantKeys, user: User) -> str:
    return keys.fingerprint(user.email_index.encode(), purpose=ADDRESS_PURPOSE)[:16]


@dataclass(frozen=True)
class UserToken:
    user_id: str
    binding: str

    def still_valid_for(self, keys: TenantKeys, user: User,
                        bind: Binding = password_epoch) -> bool:
        """Whether what the token is bound to (the password, by default) has not
        changed since it was made."""
        return user.id == self.user_id and hmac.compare_digest(bind(keys, user), self.binding)


def make_token(keys: TenantKeys, *, purpose: str, user: User, expires_at: datetime,
               bind: Binding = password_epoch) -> str:
    body = f"{user.id}.{int(expires_at.timestamp())}.{bind(keys, user)}"
    mac = keys.fingerprint(body.encode(), purpose=purpose)
    return base64.urlsafe_b64encode(f"{body}.{mac}".encode()).decode().rstrip("=")


def read_token(keys: TenantKeys, *, purpose: str, token: str, now: datetime) -> UserToken:
    """The token's content; ``TokenRefused`` when forged, garbled or expired."""
    parts = _parts(token)
    if parts is None:
        raise TokenRefused(expired=False)
    user_id, expires, epoch, mac = parts
    expected = keys.fingerprint(f"{user_id}.{expires}.{epoch}".encode(), purpose=purpose)
    if not hmac.compare_digest(mac, expected):
        raise TokenRefused(expired=False)
    if now.timestamp() >= int(expires):
        raise TokenRefused(expired=True)
    return UserToken(user_id, epoch)


def _parts(token: str) -> tuple[str, str, str, str] | None:
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:
        return None
    parts = text.split(".")
    if len(parts) != 4 or not parts[1].isascii() or not parts[1].isdigit():
        return None
    return parts[0], parts[1], parts[2], parts[3]
