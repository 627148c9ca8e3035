"""Every column that can hold text, bytes or JSON says what it holds and, if that is
personal data, how long it is kept (RET-1): ``core/data_categories.py``."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Enum,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tidings.core.data_categories import (
    ACCOUNT_LIFETIME_RULE,
    AUTHENTICATION,
    CATEGORIES,
    CONTACT,
    MESSAGE_ADDRESS_RULE,
    MESSAGE_BODY_RULE,
    OPERATIONS,
    PHONE,
    Retention,
    annotation_problems,
    operational,
    personal,
)
from tidings.migrations.models import load_all
from tidings.storage.db import Base
from tidings.storage.sqltypes import Ciphertext


def test_every_model_column_declares_its_category_and_retention() -> None:
    load_all()
    problems = annotation_problems(Base.metadata)
    assert not problems, "columns to annotate in their models:\n" + "\n".join(problems)


def test_the_walk_reaches_every_table_and_the_personal_columns() -> None:
    # The check above cannot pass for want of anything to look at.
    load_all()
    assert {"messages", "users", "jobs", "audit_events", "privacy_requests"} <= set(
        Base.metadata.tables)
    messages = Base.metadata.tables["messages"].c
    assert messages.body_enc.info["retention"] == MESSAGE_BODY_RULE
    assert messages.to_enc.info["retention"] == MESSAGE_ADDRESS_RULE
    assert messages.status.info == {"data_category": OPERATIONS}


class _Scratch(DeclarativeBase):
    metadata = MetaData()


class _Forgotten(_Scratch):
    __tablename__ = "forgotten"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(40), info=operational())
    note: Mapped[str] = mapped_column(String(200))


def test_a_model_with_an_unannotated_string_column_is_caught() -> None:
    assert annotation_problems(_Scratch.metadata) == [
        "forgotten.note: a text, binary or JSON column without a data category: "
        "info=personal(category, rule) or info=operational()"]


def test_text_binary_json_and_ciphertext_columns_need_a_category_numbers_do_not() -> None:
    metadata = MetaData()
    Table("scratch", metadata,
          Column("id", Integer, primary_key=True),
          Column("a_text", Text), Column("a_choice", Enum("a", "b", name="choice")),
          Column("a_blob", LargeBinary), Column("a_doc", JSON), Column("a_sealed", Ciphertext),
          Column("a_count", Integer), Column("a_flag", Boolean))
    assert [p.split(":")[0] for p in annotation_problems(metadata)] == [
        "scratch.a_text", "scratch.a_choice", "scratch.a_blob", "scratch.a_doc",
        "scratch.a_sealed"]


def test_wrong_annotations_are_named() -> None:
    bad_rule = copy.copy(ACCOUNT_LIFETIME_RULE)  # built valid, then spoilt behind its back
    object.__setattr__(bad_rule, "action", "archive")
    metadata = MetaData()
    Table("scratch", metadata,
          Column("id", Integer, primary_key=True),
          Column("no_rule", String, info={"data_category": PHONE}),
          Column("not_a_rule", String, info={"data_category": PHONE, "retention": "P90D"}),
          Column("unknown", String, info={"data_category": "user.shoe_size"}),
          Column("system_with_rule", String,
                 info={"data_category": OPERATIONS, "retention": ACCOUNT_LIFETIME_RULE}),
          Column("spoilt", String, info={"data_category": PHONE, "retention": bad_rule}),
          Column("good", String, info=personal(PHONE, ACCOUNT_LIFETIME_RULE)),
          Column("counted", Integer, info=operational()))
    assert annotation_problems(metadata) == [
        "scratch.no_rule: a user.contact.phone_number column without a retention rule",
        "scratch.not_a_rule: a user.contact.phone_number column without a retention rule",
        "scratch.unknown: 'user.shoe_size' is not one of the known categories",
        "scratch.system_with_rule: a system.* column takes no retention rule",
        "scratch.spoilt: action 'archive' is not one of ['anonymise', 'delete']",
    ]


def test_the_helpers_build_the_info_dicts() -> None:
    assert personal(CONTACT, ACCOUNT_LIFETIME_RULE) == {
        "data_category": "user.contact", "retention": ACCOUNT_LIFETIME_RULE}
    assert operational() == {"data_category": "system.operations"}
    assert operational(AUTHENTICATION) == {"data_category": "system.authentication"}
    assert personal(PHONE, ACCOUNT_LIFETIME_RULE) is not personal(PHONE, ACCOUNT_LIFETIME_RULE)


@pytest.mark.parametrize("category", ["system.operations", "phone", "user.shoe_size"])
def test_personal_refuses_a_category_that_is_not_a_known_user_one(category: str) -> None:
    with pytest.raises(ValueError, match=category.replace(".", r"\.")):
        personal(category, ACCOUNT_LIFETIME_RULE)


def test_personal_refuses_a_missing_rule() -> None:
    with pytest.raises(TypeError):
        personal(PHONE, "P90D")  # type: ignore[arg-type]


@pytest.mark.parametrize("category", [PHONE, "operations", "system.shoes"])
def test_operational_refuses_a_category_that_is_not_a_known_system_one(category: str) -> None:
    with pytest.raises(ValueError, match=category.replace(".", r"\.")):
        operational(category)


@pytest.mark.parametrize("period", ["P90D", "P1D", "P3650D", "account_setting:message_body_days",
                                    "account_lifetime", "until_erased"])
def test_a_rule_takes_days_or_a_named_period(period: str) -> None:
    assert Retention(period, "delete", "contract", "Why.").period == period


@pytest.mark.parametrize(("period", "action", "basis", "note", "wrong"), [
    ("24h", "delete", "contract", "Why.", "period '24h'"),
    ("P0D", "delete", "contract", "Why.", "period 'P0D'"),
    ("P3M", "delete", "contract", "Why.", "period 'P3M'"),
    ("PT24H", "delete", "contract", "Why.", "period 'PT24H'"),
    ("forever", "delete", "contract", "Why.", "period 'forever'"),
    ("P90D", "archive", "contract", "Why.", "action 'archive'"),
    ("P90D", "delete", "vital_interests", "Why.", "basis 'vital_interests'"),
    ("P90D", "delete", "contract", " ", "one line"),
    ("P90D", "delete", "contract", "Why.\nAnd more.", "one line"),
])
def test_a_rule_refuses_values_the_retention_job_does_not_know(
        period: str, action: str, basis: str, note: str, wrong: str) -> None:
    with pytest.raises(ValueError, match=wrong):
        Retention(period, action, basis, note)


def test_the_categories_are_fideslang_user_or_system_keys() -> None:
    assert all(c.split(".")[0] in ("user", "system") for c in CATEGORIES)
