"""Delivery receipts: the Appendix B text as SMSCs really write it, and receipt PDUs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.connectors.smpp.pdu import DataSm, DeliverSm, MessageState, OptionalParams
from tidings.connectors.smpp.receipts import (
    MESSAGE_STATE_TO_STATUS,
    STAT_TO_STATUS,
    ReceiptText,
    format_receipt_text,
    is_delivery_receipt,
    parse_receipt_text,
    receipt_from_deliver_sm,
)

FINAL_STATUSES = {"delivered", "undelivered", "failed", "expired", "rejected"}
APPENDIX_B = (
    "id:1234567890 sub:001 dlvrd:001 submit date:2401011200 done date:2401011205 "
    "stat:DELIVRD err:000 Text:Hello world"
)


APPENDIX_B_RECEIPT = ReceiptText(
    message_id="1234567890", submitted=1, delivered=1, submit_date="2401011200",
    done_date="2401011205", stat="DELIVRD", err="000", text="Hello world",
)


def receipt(**changes: Any) -> ReceiptText:
    return dataclasses.replace(APPENDIX_B_RECEIPT, **changes)


# --- the text form -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    (APPENDIX_B, receipt()),
    (  # Kannel and most aggregators: lowercase "text:"
        "id:0911897980 sub:001 dlvrd:000 submit date:1201121551 done date:1201121551 "
        "stat:UNDELIV err:075 text:-PROFILE",
        receipt(message_id="0911897980", delivered=0, submit_date="1201121551",
                done_date="1201121551", stat="UNDELIV", err="075", text="-PROFILE"),
    ),
    (  # no Text at all, seconds in the dates
        "id:64567564356765435676 sub:001 dlvrd:001 submit date:190608165232 "
        "done date:190608165237 stat:DELIVRD err:000",
        receipt(message_id="64567564356765435676", submit_date="190608165232",
                done_date="190608165237", text=""),
    ),
    (  # upper-case keys, a UUID id, lower-case stat, extra spaces and a line break
        "ID:  1f0e6a2c-9b1d-4c1e-8f00-5a9e1b2c3d4e   SUB:1  DLVRD:0\r\nSUBMIT DATE:2401011200 "
        "DONE DATE:2401011205  STAT:expired  ERR:0  TEXT:  hi there ",
        receipt(message_id="1f0e6a2c-9b1d-4c1e-8f00-5a9e1b2c3d4e", delivered=0,
                stat="EXPIRED", err="0", text="hi there"),
    ),
    (  # hex id, garbage counts, underscore key spelling, no dates
        "id:7F3A0B sub:?? dlvrd:n/a submit_date: done_date: stat:REJECTD err:0x0b",
        receipt(message_id="7F3A0B", submitted=0, delivered=0, submit_date="",
                done_date="", stat="REJECTD", err="0x0b", text=""),
    ),
    (  # a Text that itself looks like keys stays text
        "id:9 sub:001 dlvrd:001 submit date:2401011200 done date:2401011205 stat:DELIVRD "
        "err:000 text:id:evil stat:UNDELIV",
        receipt(message_id="9", text="id:evil stat:UNDELIV"),
    ),
])
def test_real_world_variants(text: str, expected: ReceiptText) -> None:
    assert parse_receipt_text(text) == expected


@pytest.mark.parametrize("text", [
    "", "hello, are you there?", "id: stat:DELIVRD", "id:123 sub:001 dlvrd:001",
    "msgid:123 stat:DELIVRD", "stat:DELIVRD",
])
def test_no_id_or_no_stat_is_not_a_receipt(text: str) -> None:
    assert parse_receipt_text(text) is None


@given(st.text(max_size=300))
def test_parse_never_raises(text: str) -> None:
    parsed = parse_receipt_text(text)
    assert parsed is None or (parsed.message_id and parsed.stat)


@given(st.text(max_size=300).map(lambda noise: f"id:1 stat:DELIVRD sub:{noise} dlvrd:{noise}"))
def test_noisy_fields_never_raise(text: str) -> None:
    parsed = parse_receipt_text(text)
    assert parsed is not None
    assert parsed.submitted >= 0


def test_format_pads_counts_and_cuts_text() -> None:
    text = format_receipt_text(receipt(submitted=2, delivered=0, text="x" * 30))
    assert text == (
        "id:1234567890 sub:002 dlvrd:000 submit date:2401011200 done date:2401011205 "
        "stat:DELIVRD err:000 Text:" + "x" * 20
    )


words = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(
    lambda char: char != ":"), min_size=1, max_size=12)


@given(
    message_id=words, counts=st.tuples(st.integers(0, 999), st.integers(0, 999)),
    dates=st.tuples(st.from_regex(r"\A\d{10}\Z"), st.from_regex(r"\A\d{10}\Z")),
    stat=st.sampled_from(sorted(STAT_TO_STATUS)), err=st.from_regex(r"\A\d{3}\Z"),
    text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(
        str.strip),
)
def test_format_then_parse_round_trips(
    message_id: str, counts: tuple[int, int], dates: tuple[str, str], stat: str, err: str,
    text: str,
) -> None:
    original = ReceiptText(message_id, counts[0], counts[1], dates[0], dates[1], stat, err, text)
    assert parse_receipt_text(format_receipt_text(original)) == original


# --- status mapping ----------------------------------------------------------------------


def test_every_stat_word_maps_to_a_final_status_or_none() -> None:
    assert set(STAT_TO_STATUS.values()) <= FINAL_STATUSES | {None}
    assert STAT_TO_STATUS["DELIVRD"] == "delivered"
    assert STAT_TO_STATUS["DELETED"] == STAT_TO_STATUS["UNDELIV"] == "undelivered"
    assert STAT_TO_STATUS["UNKNOWN"] == "failed"
    assert STAT_TO_STATUS["ACCEPTD"] is STAT_TO_STATUS["ENROUTE"] is None


def test_every_message_state_is_mapped_like_its_stat_word() -> None:
    words = {
        MessageState.ENROUTE: "ENROUTE", MessageState.DELIVERED: "DELIVRD",
        MessageState.EXPIRED: "EXPIRED", MessageState.DELETED: "DELETED",
        MessageState.UNDELIVERABLE: "UNDELIV", MessageState.ACCEPTED: "ACCEPTD",
        MessageState.UNKNOWN: "UNKNOWN", MessageState.REJECTED: "REJECTD",
    }
    assert set(MESSAGE_STATE_TO_STATUS) == set(MessageState)
    for state, word in words.items():
        assert MESSAGE_STATE_TO_STATUS[state] == STAT_TO_STATUS[word]


# --- receipt PDUs ------------------------------------------------------------------------


@pytest.mark.parametrize(("esm_class", "is_receipt"), [
    (0x04, True), (0x20, True), (0x44, True), (0x00, False), (0x08, False), (0x40, False),
])
def test_is_delivery_receipt(esm_class: int, is_receipt: bool) -> None:
    assert is_delivery_receipt(esm_class) is is_receipt


def test_tlvs_win_over_the_text() -> None:
    pdu = DeliverSm(1, esm_class=0x04, short_message=APPENDIX_B.encode(), optional=OptionalParams(
        receipted_message_id="abc", message_state=MessageState.UNDELIVERABLE,
        network_error_code=b"\x03\x00\x01",
    ))
    assert receipt_from_deliver_sm(pdu) == ("abc", "undelivered", "3:0x0001")


def test_text_fills_in_what_the_tlvs_lack() -> None:
    text = APPENDIX_B.replace("DELIVRD err:000", "UNDELIV err:075")
    pdu = DeliverSm(1, esm_class=0x04, short_message=text.encode(),
                    optional=OptionalParams(receipted_message_id="abc"))
    assert receipt_from_deliver_sm(pdu) == ("abc", "undelivered", "075")


def test_text_only_receipt() -> None:
    pdu = DeliverSm(1, esm_class=0x04, short_message=APPENDIX_B.encode())
    assert receipt_from_deliver_sm(pdu) == ("1234567890", "delivered", None)


def test_ids_with_underscores_survive_data_coding_zero() -> None:
    pdu = DeliverSm(1, esm_class=0x04, data_coding=0,
                    short_message=b"id:a_b@c stat:DELIVRD err:000")
    assert receipt_from_deliver_sm(pdu) == ("a_b@c", "delivered", None)


def test_ucs2_receipt_text() -> None:
    pdu = DeliverSm(1, esm_class=0x04, data_coding=8,
                    short_message="id:77 stat:EXPIRED err:001".encode("utf-16-be"))
    assert receipt_from_deliver_sm(pdu) == ("77", "expired", "001")


def test_data_sm_receipt_in_message_payload() -> None:
    pdu = DataSm(1, esm_class=0x04, optional=OptionalParams(
        message_payload=b"id:5 sub:001 dlvrd:000 stat:REJECTD err:0"))
    assert receipt_from_deliver_sm(pdu) == ("5", "rejected", None)


def test_intermediate_notification_is_never_final() -> None:
    pdu = DeliverSm(1, esm_class=0x20, optional=OptionalParams(
        receipted_message_id="abc", message_state=MessageState.DELIVERED))
    assert receipt_from_deliver_sm(pdu) == ("abc", None, None)


def test_unknown_stat_word_is_not_final() -> None:
    pdu = DeliverSm(1, esm_class=0x04, short_message=b"id:1 stat:WHATEVER err:000")
    assert receipt_from_deliver_sm(pdu) == ("1", None, None)


def test_mobile_originated_message_is_not_a_receipt() -> None:
    assert receipt_from_deliver_sm(DeliverSm(1, short_message=APPENDIX_B.encode())) is None


def test_receipt_without_a_readable_id() -> None:
    pdu = DeliverSm(1, esm_class=0x04, short_message=b"\xff\xfe garbage")
    assert is_delivery_receipt(pdu.esm_class)
    assert receipt_from_deliver_sm(pdu) is None


@given(st.binary(max_size=200), st.sampled_from([0, 1, 3, 8, 0xF0, 0x55]))
def test_garbage_receipts_never_raise(short_message: bytes, data_coding: int) -> None:
    pdu = DeliverSm(1, esm_class=0x04, data_coding=data_coding, short_message=short_message)
    result = receipt_from_deliver_sm(pdu)
    assert result is None or result[1] in FINAL_STATUSES | {None}
