"""Who may do what inside an account: the matrix of roles and permissions, API key scopes,
and how much of a message a permission set may see.

Pure code on purpose: no database, no web framework. Routes, keys and the portal ask
this module and nothing else, so the matrix below is the one place to read (and to
check against the documented roles table) when deciding whether a role may do
something.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence, Set
from enum import StrEnum
from types import MappingProxyType

import phonenumbers


class Permission(StrEnum):
    """One thing a person or an API key may do in an account.

    The values are part of the API: they are the key scopes clients send and the names
    the documentation lists, so a value never changes once released.
    """

    MESSAGES_SEND = "messages:send"
    MESSAGES_READ = "messages:read"
    MESSAGES_READ_CONTENT = "messages:read_content"
    NUMBERS_MANAGE = "numbers:manage"
    WEBHOOKS_MANAGE = "webhooks:manage"
    KEYS_MANAGE = "keys:manage"
    USERS_MANAGE = "users:manage"
    SUBACCOUNTS_MANAGE = "subaccounts:manage"
    BILLING_READ = "billing:read"
    AUDIT_READ = "audit:read"
    PRIVACY_MANAGE = "privacy:manage"
    CONSENTS_MANAGE = "consents:manage"
    REPORTS_READ = "reports:read"
    # The two things that separate the owner from an admin.
    ACCOUNT_CLOSE = "account:close"
    ACCOUNT_TRANSFER_OWNER = "account:transfer_owner"


# One line each, for the documentation and the portal's role and scope pickers.
PERMISSION_DESCRIPTIONS: Mapping[Permission, str] = MappingProxyType({
    Permission.MESSAGES_SEND: "Send messages.",
    Permission.MESSAGES_READ: (
        "Read messages and their statuses: metadata, with phone numbers masked and no bodies."
    ),
    Permission.MESSAGES_READ_CONTENT: "Read message bodies and full phone numbers.",
    Permission.NUMBERS_MANAGE: "List, buy, configure and release phone numbers.",
    Permission.WEBHOOKS_MANAGE: "Set the webhook address, its secret and which events it gets.",
    Permission.KEYS_MANAGE: "Create, list and revoke API keys.",
    Permission.USERS_MANAGE: "Invite users, change their roles and disable them.",
    Permission.SUBACCOUNTS_MANAGE: "Create, suspend and close sub-accounts and set their rights.",
    Permission.BILLING_READ: "See balances, usage and invoices.",
    Permission.AUDIT_READ: "Read the account's audit events.",
    Permission.PRIVACY_MANAGE: "Read and manage privacy and consent records.",
    Permission.CONSENTS_MANAGE: "Record, import and read people's consent to be messaged.",
    Permission.REPORTS_READ: "See counts and reports, with phone numbers masked and no bodies.",
    Permission.ACCOUNT_CLOSE: "Close the account.",
    Permission.ACCOUNT_TRANSFER_OWNER: "Make another user the account's owner.",
})


class Role(StrEnum):
    """A task-related role profile of a user inside one account (least privilege)."""

    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    BILLING = "billing"
    COMPLIANCE = "compliance"
    ANALYST = "analyst"
    SUPPORT = "support"


class OperatorRole(StrEnum):
    """The role of the platform operator's staff, who belong to no account.

    Kept apart from ``Role`` on purpose: an operator is not a member of the accounts it
    looks after, so it has no row in ``ROLE_PERMISSIONS`` and ``permissions_of`` does
    not accept it. What operators may see inside a client account, and the break-glass
    access to message content (a reason, an expiry, audited and visible to the
    account), come later and will be decided there, not by this matrix.
    """

    OPERATOR = "operator"


_P = Permission

# The matrix. Each row is written out in full, so that a reader can hold it against
# the roles table in the documentation without following any set arithmetic.
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType({
    # Everything in the account, including users, roles, sub-accounts and closing it.
    Role.OWNER: frozenset({
        _P.MESSAGES_SEND, _P.MESSAGES_READ, _P.MESSAGES_READ_CONTENT,
        _P.NUMBERS_MANAGE, _P.WEBHOOKS_MANAGE, _P.KEYS_MANAGE,
        _P.USERS_MANAGE, _P.SUBACCOUNTS_MANAGE,
        _P.BILLING_READ, _P.AUDIT_READ, _P.PRIVACY_MANAGE, _P.REPORTS_READ,
        _P.CONSENTS_MANAGE, _P.ACCOUNT_CLOSE, _P.ACCOUNT_TRANSFER_OWNER,
    }),
    # Everything but closing the account and changing the owner.
    Role.ADMIN: frozenset({
        _P.MESSAGES_SEND, _P.MESSAGES_READ, _P.MESSAGES_READ_CONTENT,
        _P.NUMBERS_MANAGE, _P.WEBHOOKS_MANAGE, _P.KEYS_MANAGE,
        _P.USERS_MANAGE, _P.SUBACCOUNTS_MANAGE,
        _P.BILLING_READ, _P.AUDIT_READ, _P.PRIVACY_MANAGE, _P.REPORTS_READ,
        _P.CONSENTS_MANAGE,
    }),
    # Send, read messages with content, numbers, webhooks, API keys; the consents of the
    # people it sends to (its systems record the opt-ins their forms and keywords take).
    Role.DEVELOPER: frozenset({
        _P.MESSAGES_SEND, _P.MESSAGES_READ, _P.MESSAGES_READ_CONTENT,
        _P.NUMBERS_MANAGE, _P.WEBHOOKS_MANAGE, _P.KEYS_MANAGE, _P.CONSENTS_MANAGE,
    }),
    # Balances, usage and invoices; no message content.
    Role.BILLING: frozenset({
        _P.BILLING_READ,
    }),
    # Audit events, privacy and consent records, message metadata. Content only through
    # a recorded reason, which is a separate, audited grant: never messages:read_content.
    Role.COMPLIANCE: frozenset({
        _P.AUDIT_READ, _P.PRIVACY_MANAGE, _P.CONSENTS_MANAGE, _P.MESSAGES_READ,
    }),
    # Counts and reports only: numbers masked, no bodies.
    Role.ANALYST: frozenset({
        _P.REPORTS_READ,
    }),
    # Read messages with masked numbers and no bodies; no sending.
    Role.SUPPORT: frozenset({
        _P.MESSAGES_READ,
    }),
})


def permissions_of(role: Role) -> frozenset[Permission]:
    """Return what ``role`` may do; a name that is not a role raises ``ValueError``."""
    return ROLE_PERMISSIONS[Role(role)]


def allows(role_or_permissions: Role | Set[Permission], permission: Permission) -> bool:
    """Return True if the role, or the set of permissions (a key's scopes), includes
    ``permission``.

    A misspelt permission raises ``ValueError`` instead of quietly answering no, so a
    route that declares a permission that does not exist fails the first time it runs.
    """
    return Permission(permission) in _as_permissions(role_or_permissions)


# --- API key scopes -----------------------------------------------------------------------

# Long enough for any real scope name; short enough that an error cannot echo a
# megabyte of whatever the client sent.
MAX_SCOPE_NAME_IN_ERROR = 60


class ScopeError(ValueError):
    """A key's requested scopes were refused."""


class UnknownScope(ScopeError):
    """A requested scope is not the name of a permission; ``name`` is what was sent,
    trimmed to ``MAX_SCOPE_NAME_IN_ERROR`` characters."""

    def __init__(self, name: str) -> None:
        self.name = name[:MAX_SCOPE_NAME_IN_ERROR]
        super().__init__(f"unknown scope {self.name!r}")


class ScopeTooWide(ScopeError):
    """Requested scopes go beyond what the key's creator may do; ``extra`` names the
    permissions that were asked for but not granted."""

    def __init__(self, *, extra: Iterable[Permission]) -> None:
        self.extra = frozenset(extra)
        names = ", ".join(sorted(self.extra))
        super().__init__(f"scopes wider than the creator's own permissions: {names}")


_PERMISSION_VALUES = frozenset(permission.value for permission in Permission)


def parse_scopes(values: Sequence[str]) -> frozenset[Permission]:
    """Turn the scope names a client sent into permissions.

    Names must match exactly (no trimming or case folding: a scope is an identifier).
    The first name that is not a permission raises ``UnknownScope``.
    """
    # A bare string is a Sequence[str] too; iterating it would report "m" as unknown
    # instead of telling the caller that a list was expected.
    if isinstance(values, str):
        raise TypeError("scopes must be a list of names, not one string")
    scopes: set[Permission] = set()
    for value in values:
        if not isinstance(value, str) or value not in _PERMISSION_VALUES:
            raise UnknownScope(str(value))
        scopes.add(Permission(value))
    return frozenset(scopes)


def narrower_or_equal(scopes: Set[Permission], granted: Set[Permission]) -> bool:
    """Return True if every scope in ``scopes`` is also in ``granted``."""
    return scopes <= granted


def check_scopes_within(scopes: Set[Permission], granted: Set[Permission]) -> None:
    """Raise ``ScopeTooWide`` naming the scopes that ``granted`` does not include."""
    extra = scopes - granted
    if extra:
        raise ScopeTooWide(extra=extra)


def key_scopes(requested: Sequence[str] | None, granted: Set[Permission]) -> frozenset[Permission]:
    """Return the scopes for a new API key: those requested, or when none are given the
    creator's own permissions; never wider than ``granted``.

    Raises ``UnknownScope`` or ``ScopeTooWide``.
    """
    if requested is None:
        return frozenset(granted)
    scopes = parse_scopes(requested)
    check_scopes_within(scopes, granted)
    return scopes


# --- What a reader sees of a message ------------------------------------------------------


class ContentView(StrEnum):
    """How much of a phone number or a message body to show."""

    FULL = "full"
    MASKED = "masked"
    NONE = "none"


def number_view(role_or_permissions: Role | Set[Permission]) -> ContentView:
    """Decide how phone numbers are shown: in full with ``messages:read_content``,
    masked to whoever may read message metadata or reports, otherwise not at all."""
    permissions = _as_permissions(role_or_permissions)
    if Permission.MESSAGES_READ_CONTENT in permissions:
        return ContentView.FULL
    if permissions & {Permission.MESSAGES_READ, Permission.REPORTS_READ}:
        return ContentView.MASKED
    return ContentView.NONE


def body_view(role_or_permissions: Role | Set[Permission]) -> ContentView:
    """Decide how message bodies are shown: in full with ``messages:read_content``,
    otherwise not at all (a body has no useful masked form)."""
    if Permission.MESSAGES_READ_CONTENT in _as_permissions(role_or_permissions):
        return ContentView.FULL
    return ContentView.NONE


# Digits hidden at the end of a number; numbers shorter than _SHORT_NUMBER_DIGITS would
# show too much of themselves that way, so they keep only their country code.
_MASKED_TAIL = 4
_SHORT_NUMBER_DIGITS = 8
# [0-9] rather than \d: \d also matches non-ASCII digits.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def mask_number(e164: str) -> str:
    """Hide the end of a phone number in E.164 form: ``+12025550173`` → ``+1202555****``.

    A number of 8 digits or more keeps all but its last 4 digits; a shorter one keeps
    only its country code (``+4930123`` → ``+49*****``), since its last 4 digits would
    be most of it. Anything that is not an E.164 number raises ``ValueError``.
    """
    if _E164.fullmatch(e164) is None:
        raise ValueError("not a phone number in E.164 form, such as +12025550173")
    digits = e164[1:]
    if len(digits) >= _SHORT_NUMBER_DIGITS:
        shown = len(digits) - _MASKED_TAIL
    else:
        shown = _country_code_length(digits)
    return "+" + digits[:shown] + "*" * (len(digits) - shown)


def _country_code_length(digits: str) -> int:
    # Country codes are 1 to 3 digits and none is the prefix of another, so the first
    # known prefix is the country code.
    for length in (1, 2, 3):
        if int(digits[:length]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            if length == len(digits):
                break  # a country code alone is not a number
            return length
    raise ValueError("not a phone number: no known country code followed by digits")


def _as_permissions(role_or_permissions: Role | Set[Permission]) -> Set[Permission]:
    # A plain string is taken as a role name, never as a collection of characters.
    if isinstance(role_or_permissions, str):
        return permissions_of(Role(role_or_permissions))
    return role_or_permissions
