"""What each database column holds and how long it is kept (RET-1; the data map of ROPA-1).

Every column that can hold text, bytes or JSON says what it holds in its
``mapped_column(info=...)``: ``personal(category, rule)`` for personal data (a ``user.*``
category of the fideslang taxonomy) with the retention rule that applies to it, or
``operational(category)`` for the system's own data (``system.*``). Numbers, flags and
times need no annotation, though they may have one. ``tests/test_data_categories.py``
walks every model with ``annotation_problems`` and fails, naming the column, on a
column without a category, a personal one without a rule, or a rule or category that is
not one of those below. Adding ``info`` changes no schema: it needs no migration.

Categories (fideslang keys; each has a constant here, and ``CATEGORIES`` lists them):

- ``PHONE``, ``user.contact.phone_number``: a phone number;
- ``EMAIL``, ``user.contact.email``: an e-mail address;
- ``CONTACT``, ``user.contact``: an address that is a phone number or an e-mail address
  as the channel has it (a message's ``to``, a request's subject);
- ``NAME``, ``user.name``: a person's name;
- ``PRIVATE_CONTENT`` (also ``MESSAGE_CONTENT``), ``user.content.private``: what people
  write: message bodies and content, and free text that may name someone (notes,
  reasons);
- ``DETERMINISTIC_ID``, ``user.unique_id.deterministic``: a blind index, a keyed hash
  computed from a number or address (the same value, the same token), as the access
  bundle calls it (``privacy/bundles.py``);
- ``PSEUDONYMOUS_ID``, ``user.unique_id.pseudonymous``: a random id that stands for a
  person (a subject key's id);
- ``CREDENTIALS``, ``user.authorization.credentials``: a person's login secrets: the
  password's hash, the TOTP secret, recovery codes' and session tokens' hashes;
- ``IP_ADDRESS``, ``user.device.ip_address``: a person's IP address;
- ``OPERATIONS``, ``system.operations``: ids, statuses, kinds, codes, counts, labels, the
  account's own endpoints, the company's public identity;
- ``AUTHENTICATION``, ``system.authentication``: machine credentials: API and operator
  keys' hashes, prefixes, scopes and networks, SMPP passwords' hashes, webhook and
  connector secrets, the hashes of one-time codes that prove a number.

Retention rules

A rule is a period, an action at its end (``delete`` or ``anonymise``), a legal basis
(``contract``, ``legal_obligation``, ``legitimate_interests``, ``consent``) and a
one-line note. The period is one the retention job interprets: an ISO 8601 duration in
days (``P90D``; months and years vary in length, so they are written as days), or a
named period:

- ``account_setting:message_body_days``: the account's message retention (the
  operator's default, 90 days, unless the account chose another within the operator's
  limits), counted from the message's creation;
- ``account_lifetime``: kept while the account exists, deleted with it (the DPA: within
  six months of the end of the service): a terminated account's purge
  (``privacy/termination.py``) deletes its rows and destroys its keys;
- ``until_erased``: kept until the person is erased (or, before that, the account).

The rules the models use, and why:

- ``MESSAGE_BODY_RULE`` (``account_setting:message_body_days``, delete, contract): bodies
  and channel content serve delivery and the account's recent history;
- ``MESSAGE_ADDRESS_RULE`` (same period, anonymise, contract): the address becomes its
  country and number type, which statistics keep (RET-2; CX Engage: "de-identified or
  anonymized after the applicable retention period");
- ``MESSAGE_TOKEN_RULE`` (same period, delete, contract): a message's blind indexes and
  subject key id go with its address, so that no token of the person is left;
- ``IDEMPOTENCY_RULE`` (``P1D``, delete, contract): a request's keyed fingerprint and a
  batch's answer, kept 24 hours for retries, then pruned;
- ``PLATFORM_MAIL_RULE`` (``P1D``, delete, contract): the platform's own mail, sealed in
  its job until sent or given up (24 hours at most);
- ``BUNDLE_RULE`` (``P7D``, delete, legal_obligation): an access or portability bundle
  (GDPR Art. 15, 20), downloadable for seven days;
- ``ACCOUNT_LIFETIME_RULE`` (``account_lifetime``, delete, contract): what the account
  told about itself and its people (its numbers and senders, its users' addresses, its
  contact, the operator's notes about it);
- ``CREDENTIALS_RULE`` (``account_lifetime``, delete, contract): hashes and sealed
  secrets only, replaced when changed (the last few password hashes kept to refuse
  reuse);
- ``BREAK_GLASS_RULE`` (``account_lifetime``, delete, legitimate_interests): an
  operator's reason for reading an account's content, kept so the account can review
  every access;
- ``UNTIL_ERASED_RULE`` (``until_erased``, delete, contract): a person's token kept for
  a service to them (WhatsApp's customer-service window);
- ``DSR_SUBJECT_RULE`` (``until_erased``, delete, legal_obligation): who a data subject
  request, hold or restriction is about, kept to show how it was handled (Art. 5(2),
  12) and emptied when the person is erased;
- ``DSR_RECORD_RULE`` (``account_lifetime``, delete, legal_obligation): the free text
  of such a record that erasure keeps (an extension's reason, a hold's basis);
- ``CONSENT_RECORD_RULE`` (``account_lifetime``, delete, legal_obligation): a consent
  event's subject token and key id, kept as the proof that a message had consent (GDPR
  Art. 7(1)); an erasure appends an ``erased`` event rather than deleting them;
- ``CONSENT_EVIDENCE_RULE`` (``until_erased``, delete, legal_obligation): a consent
  event's evidence and IP prefix, under the person's key, shredded when they are erased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, LargeBinary, MetaData, String
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

__all__ = [
    "ACCOUNT_LIFETIME",
    "ACCOUNT_LIFETIME_RULE",
    "ACTIONS",
    "AUTHENTICATION",
    "BASES",
    "BREAK_GLASS_RULE",
    "BUNDLE_RULE",
    "CATEGORIES",
    "CONSENT_EVIDENCE_RULE",
    "CONSENT_RECORD_RULE",
    "CONTACT",
    "CREDENTIALS",
    "CREDENTIALS_RULE",
    "DETERMINISTIC_ID",
    "DSR_RECORD_RULE",
    "DSR_SUBJECT_RULE",
    "EMAIL",
    "IDEMPOTENCY_RULE",
    "IP_ADDRESS",
    "MESSAGE_ADDRESS_RULE",
    "MESSAGE_BODY_DAYS",
    "MESSAGE_BODY_RULE",
    "MESSAGE_CONTENT",
    "MESSAGE_TOKEN_RULE",
    "NAME",
    "NAMED_PERIODS",
    "OPERATIONS",
    "PHONE",
    "PLATFORM_MAIL_RULE",
    "PRIVATE_CONTENT",
    "PSEUDONYMOUS_ID",
    "UNTIL_ERASED",
    "UNTIL_ERASED_RULE",
    "Retention",
    "annotation_problems",
    "operational",
    "personal",
    "rule_problems",
]

# ------------------------------------------------------------------------ categories

PHONE = "user.contact.phone_number"
EMAIL = "user.contact.email"
CONTACT = "user.contact"  # a phone number or an e-mail address, by channel
NAME = "user.name"
PRIVATE_CONTENT = "user.content.private"
MESSAGE_CONTENT = PRIVATE_CONTENT
DETERMINISTIC_ID = "user.unique_id.deterministic"  # blind indexes
PSEUDONYMOUS_ID = "user.unique_id.pseudonymous"  # subject key ids
CREDENTIALS = "user.authorization.credentials"
IP_ADDRESS = "user.device.ip_address"
OPERATIONS = "system.operations"
AUTHENTICATION = "system.authentication"

CATEGORIES = frozenset({PHONE, EMAIL, CONTACT, NAME, PRIVATE_CONTENT, DETERMINISTIC_ID,
                        PSEUDONYMOUS_ID, CREDENTIALS, IP_ADDRESS, OPERATIONS,
                        AUTHENTICATION})

# ------------------------------------------------------------------------- retention

MESSAGE_BODY_DAYS = "account_setting:message_body_days"
ACCOUNT_LIFETIME = "account_lifetime"
UNTIL_ERASED = "until_erased"
NAMED_PERIODS = frozenset({MESSAGE_BODY_DAYS, ACCOUNT_LIFETIME, UNTIL_ERASED})
ACTIONS = frozenset({"delete", "anonymise"})
BASES = frozenset({"contract", "legal_obligation", "legitimate_interests", "consent"})
_DAYS = re.compile(r"P([1-9][0-9]*)D")


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a column's personal data is kept and what happens to it then."""

    period: str  # "P90D", or one of NAMED_PERIODS
    action: str  # "delete" or "anonymise"
    basis: str  # the legal basis: one of BASES
    note: str  # one line: why

    def __post_init__(self) -> None:
        problems = rule_problems(self)
        if problems:
            raise ValueError("; ".join(problems))


def rule_problems(rule: Retention) -> list[str]:
    """What is wrong with ``rule`` (nothing: an empty list)."""
    problems = []
    if not (rule.period in NAMED_PERIODS or _DAYS.fullmatch(rule.period)):
        problems.append(f"period {rule.period!r} is neither an ISO 8601 duration in days "
                        f"(P90D) nor one of {sorted(NAMED_PERIODS)}")
    if rule.action not in ACTIONS:
        problems.append(f"action {rule.action!r} is not one of {sorted(ACTIONS)}")
    if rule.basis not in BASES:
        problems.append(f"basis {rule.basis!r} is not one of {sorted(BASES)}")
    if not rule.note.strip() or "\n" in rule.note:
        problems.append("the note must be one line saying why")
    return problems


MESSAGE_BODY_RULE = Retention(
    MESSAGE_BODY_DAYS, "delete", "contract",
    "Bodies and content serve delivery and the account's recent history; deleted after "
    "the account's message retention.")
MESSAGE_ADDRESS_RULE = Retention(
    MESSAGE_BODY_DAYS, "anonymise", "contract",
    "After the account's message retention the address becomes its country and number "
    "type, which statistics keep (RET-2).")
MESSAGE_TOKEN_RULE = Retention(
    MESSAGE_BODY_DAYS, "delete", "contract",
    "A message's blind indexes and subject key id go with its address: no token of the "
    "person is left (RET-2).")
IDEMPOTENCY_RULE = Retention(
    "P1D", "delete", "contract",
    "A request's fingerprint and a batch's answer serve retries for 24 hours, then are "
    "pruned.")
PLATFORM_MAIL_RULE = Retention(
    "P1D", "delete", "contract",
    "The platform's mail waits, sealed, in its job until sent or given up after 24 hours.")
BUNDLE_RULE = Retention(
    "P7D", "delete", "legal_obligation",
    "An access or portability bundle (GDPR Art. 15, 20) is downloadable for seven days.")
ACCOUNT_LIFETIME_RULE = Retention(
    ACCOUNT_LIFETIME, "delete", "contract",
    "What the account told about itself and its people serves the account; deleted with "
    "it (the DPA: within six months of the end of the service).")
CREDENTIALS_RULE = Retention(
    ACCOUNT_LIFETIME, "delete", "contract",
    "Hashes and sealed secrets only, replaced when changed (the last few password hashes "
    "refuse reuse); deleted with the account.")
BREAK_GLASS_RULE = Retention(
    ACCOUNT_LIFETIME, "delete", "legitimate_interests",
    "An operator's reason for reading an account's content, kept while the account "
    "exists so that it can review every access.")
UNTIL_ERASED_RULE = Retention(
    UNTIL_ERASED, "delete", "contract",
    "A person's token kept for a service to them (WhatsApp's customer-service window) "
    "until they are erased.")
DSR_SUBJECT_RULE = Retention(
    UNTIL_ERASED, "delete", "legal_obligation",
    "Who a data subject request, hold or restriction is about, kept to show how it was "
    "handled (GDPR Art. 5(2), 12) until the person is erased.")
DSR_RECORD_RULE = Retention(
    ACCOUNT_LIFETIME, "delete", "legal_obligation",
    "The free text of a data subject request or hold that erasure keeps (an extension's "
    "reason, a hold's basis), as proof of how it was handled.")
CONSENT_RECORD_RULE = Retention(
    ACCOUNT_LIFETIME, "delete", "legal_obligation",
    "Who a consent event is about (their token and key id) proves a message had consent "
    "(GDPR Art. 7(1)); kept while the account exists, ended by an erased event.")
CONSENT_EVIDENCE_RULE = Retention(
    UNTIL_ERASED, "delete", "legal_obligation",
    "A consent event's evidence and IP prefix prove the consent; under the person's key, "
    "shredded when they are erased.")

# ----------------------------------------------------------------------- annotations


def personal(category: str, retention: Retention) -> dict[str, Any]:
    """``mapped_column(info=...)`` for a column of personal data (a ``user.*`` category)."""
    if not category.startswith("user."):
        raise ValueError(f"{category!r} is not personal data: use operational()")
    if category not in CATEGORIES:
        raise ValueError(f"{category!r} is not one of the known categories")
    if not isinstance(retention, Retention):
        raise TypeError("a personal column needs a Retention rule")
    return {"data_category": category, "retention": retention}


def operational(category: str = OPERATIONS) -> dict[str, Any]:
    """``mapped_column(info=...)`` for a column of the system's own data (``system.*``)."""
    if not category.startswith("system."):
        raise ValueError(f"{category!r} is not system data: use personal() with a rule")
    if category not in CATEGORIES:
        raise ValueError(f"{category!r} is not one of the known categories")
    return {"data_category": category}


def annotation_problems(metadata: MetaData) -> list[str]:
    """Every column of ``metadata`` whose annotation is missing or wrong, as
    ``"table.column: what"``, tables and columns in order (nothing wrong: empty)."""
    problems = []
    for name in sorted(metadata.tables):
        for column in metadata.tables[name].columns:
            problems += [f"{name}.{column.name}: {problem}"
                         for problem in _column_problems(column.info, column.type)]
    return problems


def _column_problems(info: dict[Any, Any], type_: TypeEngine[Any]) -> list[str]:
    category = info.get("data_category")
    retention = info.get("retention")
    if category is None:
        if _may_hold_personal_data(type_):
            return ["a text, binary or JSON column without a data category: "
                    "info=personal(category, rule) or info=operational()"]
        return []
    if category not in CATEGORIES:
        return [f"{category!r} is not one of the known categories"]
    if not category.startswith("user."):
        return [] if retention is None else ["a system.* column takes no retention rule"]
    if not isinstance(retention, Retention):
        return [f"a {category} column without a retention rule"]
    return rule_problems(retention)


def _may_hold_personal_data(type_: TypeEngine[Any]) -> bool:
    while isinstance(type_, TypeDecorator):  # Ciphertext is LargeBinary underneath
        type_ = type_.impl_instance
    # String covers Text, Unicode and Enum; an unknown type (NullType) may hold anything.
    return isinstance(type_, String | LargeBinary | JSON | NullType)
