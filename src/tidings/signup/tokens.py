"""The signed, expiring token of an address-confirmation link (``users/user_tokens.py``).

Like the log-in challenge it holds nothing secret: the user id, an expiry and a keyed
digest of the user's address index, signed under a platform key. A changed address
voids the link; anyone may read a token, nobody can make one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tidings.storage.vault import TenantKeys
from tidings.users.models import User
from tidings.users.user_tokens import (
    TokenRefused,
    UserToken,
    bound_to_address,
    make_token,
    read_token,
)
from tidings.web.errors import InvalidRequest

CONFIRMATION_LIFETIME = timedelta(days=3)
PURPOSE = "signup.address_confirmation"


def confirmation_token(platform: TenantKeys, *, user: User, expires_at: datetime) -> str:
    return make_token(platform, purpose=PURPOSE, user=user, expires_at=expires_at,
                      bind=bound_to_address)


def read_confirmation(platform: TenantKeys, token: str, *, now: datetime) -> UserToken:
    """The token's content; ``invalid_token`` or ``token_expired`` otherwise."""
    try:
        return read_token(platform, purpose=PURPOSE, token=token, now=now)
    except TokenRefused as refused:
        if refused.expired:
            raise InvalidRequest("The confirmation link has expired; sign up again for a "
                                 "new one.", code="token_expired", parameter="token") from None
        raise invalid_token() from None


def check_address(platform: TenantKeys, token: UserToken, user: User) -> None:
    """``invalid_token`` unless the user's address is the one the link was sent to."""
    if not token.still_valid_for(platform, user, bind=bound_to_address):
        raise invalid_token()


def invalid_token() -> InvalidRequest:
    return InvalidRequest("The confirmation token is not valid.", code="invalid_token",
                          parameter="token")
