"""The matrix of roles and permissions, API key scopes and the masking of what a reader sees.

The expected matrix is written out here by hand from the roles table of issue 14, not
derived from the module, so a change to either shows up as a failing cell.
"""

from __future__ import annotations

import pytest

from tidings.accounts.permissions import (
    MAX_SCOPE_NAME_IN_ERROR,
    PERMISSION_DESCRIPTIONS,
    ROLE_PERMISSIONS,
    ContentView,
    OperatorRole,
    Permission,
    Role,
    ScopeTooWide,
    UnknownScope,
    allows,
    body_view,
    check_scopes_within,
    key_scopes,
    mask_number,
    narrower_or_equal,
    number_view,
    parse_scopes,
    permissions_of,
)

# The names clients and tests rely on (issue 14, "The contract").
CONTRACT_PERMISSIONS = {
    "messages:send", "messages:read", "messages:read_content", "numbers:manage",
    "webhooks:manage", "keys:manage", "users:manage", "subaccounts:manage", "billing:read",
    "audit:read", "privacy:manage", "reports:read",
}
# What the roles table needs beyond the contract: what the owner may do and an admin not.
OWNER_ONLY_PERMISSIONS = {"account:close", "account:transfer_owner"}
# Consent records (issue 17): recorded by whoever manages the people messaged.
CONSENT_PERMISSIONS = {"consents:manage"}
ALL_PERMISSIONS = CONTRACT_PERMISSIONS | OWNER_ONLY_PERMISSIONS | CONSENT_PERMISSIONS

ROLES = {"owner", "admin", "developer", "billing", "compliance", "analyst", "support"}

# Issue 14, section 6, one row per role.
EXPECTED_MATRIX: dict[str, set[str]] = {
    # everything in the account, including users, roles, sub-accounts and closing it
    "owner": set(ALL_PERMISSIONS),
    # everything but closing the account and changing the owner
    "admin": {
        "messages:send", "messages:read", "messages:read_content", "numbers:manage",
        "webhooks:manage", "keys:manage", "users:manage", "subaccounts:manage",
        "billing:read", "audit:read", "privacy:manage", "reports:read", "consents:manage",
    },
    # send, read messages with content, numbers, webhooks, API keys; consents of the
    # people it sends to
    "developer": {
        "messages:send", "messages:read", "messages:read_content", "numbers:manage",
        "webhooks:manage", "keys:manage", "consents:manage",
    },
    # balances, usage, invoices; no message content
    "billing": {"billing:read"},
    # audit events, privacy and consent records, message metadata; content only through
    # a recorded reason, which is not a role permission
    "compliance": {"audit:read", "privacy:manage", "consents:manage", "messages:read"},
    # counts and reports only
    "analyst": {"reports:read"},
    # read messages with masked numbers and no bodies; no sending
    "support": {"messages:read"},
}

MATRIX_CELLS = [
    (role, permission, permission in EXPECTED_MATRIX[role])
    for role in sorted(ROLES)
    for permission in sorted(ALL_PERMISSIONS)
]


# --- The names --------------------------------------------------------------------------


def test_permission_values_are_exactly_the_contract_names_and_the_owner_only_ones() -> None:
    assert {permission.value for permission in Permission} == ALL_PERMISSIONS


def test_role_values_are_exactly_the_documented_roles() -> None:
    assert {role.value for role in Role} == ROLES


def test_operator_is_not_an_account_role() -> None:
    assert [role.value for role in OperatorRole] == ["operator"]
    assert "operator" not in {role.value for role in Role}
    with pytest.raises(ValueError, match="operator"):
        permissions_of(OperatorRole.OPERATOR)  # type: ignore[arg-type]


def test_every_permission_has_a_one_line_description() -> None:
    assert set(PERMISSION_DESCRIPTIONS) == set(Permission)
    for description in PERMISSION_DESCRIPTIONS.values():
        assert description.strip()
        assert "\n" not in description


# --- The matrix -------------------------------------------------------------------------


def test_the_matrix_has_a_row_for_every_role_and_no_other() -> None:
    assert {role.value for role in ROLE_PERMISSIONS} == ROLES


@pytest.mark.parametrize(("role", "permission", "expected"), MATRIX_CELLS)
def test_matrix_cell(role: str, permission: str, expected: bool) -> None:
    assert allows(Role(role), Permission(permission)) is expected
    assert (Permission(permission) in permissions_of(Role(role))) is expected


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_has_exactly_its_row(role: str) -> None:
    assert {p.value for p in permissions_of(Role(role))} == EXPECTED_MATRIX[role]


def test_owner_has_every_permission() -> None:
    assert permissions_of(Role.OWNER) == frozenset(Permission)


def test_admin_is_the_owner_without_closing_or_transferring_the_account() -> None:
    owner, admin = permissions_of(Role.OWNER), permissions_of(Role.ADMIN)
    assert admin < owner
    assert {p.value for p in owner - admin} == OWNER_ONLY_PERMISSIONS


@pytest.mark.parametrize(
    "role", [Role.DEVELOPER, Role.BILLING, Role.COMPLIANCE, Role.ANALYST, Role.SUPPORT],
)
def test_admin_includes_every_narrower_role(role: Role) -> None:
    assert permissions_of(role) <= permissions_of(Role.ADMIN)


@pytest.mark.parametrize("role", sorted(ROLES - {"owner"}))
def test_only_the_owner_may_close_the_account_or_hand_it_over(role: str) -> None:
    assert not allows(Role(role), Permission.ACCOUNT_CLOSE)
    assert not allows(Role(role), Permission.ACCOUNT_TRANSFER_OWNER)


@pytest.mark.parametrize("role", ["billing", "compliance", "analyst", "support"])
def test_non_technical_roles_never_send_or_read_content(role: str) -> None:
    assert not allows(Role(role), Permission.MESSAGES_SEND)
    assert not allows(Role(role), Permission.MESSAGES_READ_CONTENT)


def test_the_matrix_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        ROLE_PERMISSIONS[Role.SUPPORT] = frozenset(Permission)  # type: ignore[index]
    assert not allows(Role.SUPPORT, Permission.MESSAGES_SEND)


# --- allows() ---------------------------------------------------------------------------


def test_allows_takes_a_set_of_permissions_as_a_key_has() -> None:
    scopes = frozenset({Permission.MESSAGES_SEND})
    assert allows(scopes, Permission.MESSAGES_SEND)
    assert not allows(scopes, Permission.MESSAGES_READ)
    assert not allows(frozenset(), Permission.MESSAGES_SEND)


def test_allows_takes_a_role_name_as_a_plain_string() -> None:
    # A plain string is a role name, never a collection of characters to search in.
    assert allows("developer", Permission.MESSAGES_SEND)  # type: ignore[arg-type]
    assert not allows("support", Permission.MESSAGES_SEND)  # type: ignore[arg-type]


def test_allows_refuses_an_unknown_role() -> None:
    with pytest.raises(ValueError, match="superuser"):
        allows("superuser", Permission.MESSAGES_SEND)  # type: ignore[arg-type]


def test_allows_refuses_a_misspelt_permission_instead_of_answering_no() -> None:
    with pytest.raises(ValueError, match="message:send"):
        allows(Role.OWNER, "message:send")  # type: ignore[arg-type]


# --- Key scopes -------------------------------------------------------------------------


def test_parse_scopes_returns_the_permissions_named() -> None:
    scopes = parse_scopes(["messages:send", "messages:read", "messages:send"])
    assert scopes == {Permission.MESSAGES_SEND, Permission.MESSAGES_READ}
    assert parse_scopes([]) == frozenset()


@pytest.mark.parametrize(
    "name", ["messages:write", "Messages:Send", " messages:send", "", "operator", "*"],
)
def test_unknown_scope_is_refused_with_its_name(name: str) -> None:
    with pytest.raises(UnknownScope) as caught:
        parse_scopes(["messages:send", name])
    assert caught.value.name == name
    assert repr(name) in str(caught.value)


def test_unknown_scope_name_is_trimmed_in_the_error() -> None:
    name = "x" * 10_000
    with pytest.raises(UnknownScope) as caught:
        parse_scopes([name])
    assert caught.value.name == "x" * MAX_SCOPE_NAME_IN_ERROR
    assert len(str(caught.value)) < 100


def test_a_scope_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(UnknownScope) as caught:
        parse_scopes([42])  # type: ignore[list-item]
    assert caught.value.name == "42"


def test_a_single_string_is_not_taken_for_a_list_of_scopes() -> None:
    with pytest.raises(TypeError, match="list"):
        parse_scopes("messages:send")


def test_narrower_or_equal() -> None:
    granted = permissions_of(Role.DEVELOPER)
    assert narrower_or_equal(frozenset(), granted)
    assert narrower_or_equal({Permission.MESSAGES_SEND}, granted)
    assert narrower_or_equal(granted, granted)
    assert not narrower_or_equal({Permission.MESSAGES_SEND, Permission.USERS_MANAGE}, granted)


def test_scopes_within_the_grant_are_accepted() -> None:
    check_scopes_within({Permission.MESSAGES_SEND}, permissions_of(Role.DEVELOPER))


def test_scopes_wider_than_the_grant_are_refused_naming_the_extra_ones() -> None:
    requested = {Permission.MESSAGES_SEND, Permission.USERS_MANAGE, Permission.AUDIT_READ}
    with pytest.raises(ScopeTooWide) as caught:
        check_scopes_within(requested, permissions_of(Role.DEVELOPER))
    assert caught.value.extra == {Permission.USERS_MANAGE, Permission.AUDIT_READ}
    assert "audit:read, users:manage" in str(caught.value)
    assert "messages:send" not in str(caught.value)


def test_key_scopes_default_to_the_creators_own_permissions() -> None:
    granted = permissions_of(Role.SUPPORT)
    assert key_scopes(None, granted) == granted


def test_key_scopes_keep_what_was_asked_within_the_grant() -> None:
    granted = permissions_of(Role.DEVELOPER)
    assert key_scopes(["messages:send"], granted) == {Permission.MESSAGES_SEND}


def test_key_scopes_are_never_wider_than_the_creators() -> None:
    with pytest.raises(ScopeTooWide) as caught:
        key_scopes(["messages:read", "messages:send"], permissions_of(Role.SUPPORT))
    assert caught.value.extra == {Permission.MESSAGES_SEND}
    with pytest.raises(UnknownScope):
        key_scopes(["messages:everything"], permissions_of(Role.OWNER))


# --- Views and masking ------------------------------------------------------------------

# Issue 14: developers read content; support sees metadata with masked numbers; analysts
# see reports with masked numbers; billing sees no messages at all.
EXPECTED_VIEWS = {
    # role: (numbers, bodies)
    "owner": ("full", "full"),
    "admin": ("full", "full"),
    "developer": ("full", "full"),
    "compliance": ("masked", "none"),
    "support": ("masked", "none"),
    "analyst": ("masked", "none"),
    "billing": ("none", "none"),
}


@pytest.mark.parametrize(("role", "views"), sorted(EXPECTED_VIEWS.items()))
def test_views_by_role(role: str, views: tuple[str, str]) -> None:
    assert (number_view(Role(role)), body_view(Role(role))) == views


def test_views_by_key_scopes() -> None:
    content = frozenset({Permission.MESSAGES_READ, Permission.MESSAGES_READ_CONTENT})
    assert number_view(content) is ContentView.FULL
    assert body_view(content) is ContentView.FULL
    metadata = frozenset({Permission.MESSAGES_READ})
    assert number_view(metadata) is ContentView.MASKED
    assert body_view(metadata) is ContentView.NONE
    sending_only = frozenset({Permission.MESSAGES_SEND})
    assert number_view(sending_only) is ContentView.NONE
    assert body_view(sending_only) is ContentView.NONE


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+12025550173", "+1202555****"),  # the example
        ("+447911123456", "+44791112****"),
        ("+4915123456789", "+491512345****"),
        ("+33612345678", "+3361234****"),
        ("+49301234", "+4930****"),  # 8 digits: still only the last 4 hidden
        # Shorter than 8 digits: only the country code is kept.
        ("+4930123", "+49*****"),
        ("+3531234", "+353****"),
        ("+12345", "+1****"),
        ("+4412", "+44**"),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "+",
        "12025550173",  # no '+'
        "+1 202 555 0173",  # not E.164: formatting is for normalize_e164
        "+02025550173",  # no country code starts with 0
        "+1202555017312345",  # longer than 15 digits
        "+1202555O173",  # a letter O
        "+١٢٠٢٥٥٥٠١٧٣",  # Arabic-Indic digits
        "+44",  # a country code alone
        "+99",  # no such country code
        "+999999",  # still none, and short
        "SENDER",
    ],
)
def test_mask_number_refuses_what_is_not_a_number(garbage: str) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        mask_number(garbage)
