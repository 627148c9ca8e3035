"""Receipt match keys and the held unknown submits: pure, no I/O."""

from __future__ import annotations

import pytest

from tidings.connectors.smpp.matching import ReceiptMatcher
from tidings.connectors.smpp.pdu import DeliverSm, OptionalParams
from tidings.connectors.smpp.receipts import ESM_CLASS_DELIVERY_RECEIPT
from tidings.connectors.smpp.unknowns import HeldUnknowns, Unknown

KEY = bytes(range(32))
TEXT = "id:c1 sub:001 dlvrd:001 submit date:2612070300 done date:2612070300 stat:DELIVRD err:000"


def receipt(handset: str, sender: str, text: str | None, *, raw: bytes | None = None) -> DeliverSm:
    body = raw if raw is not None else (TEXT + ("" if text is None else f" Text:{text}")).encode()
    return DeliverSm(sequence_number=1, source_addr=handset, destination_addr=sender,
                     esm_class=ESM_CLASS_DELIVERY_RECEIPT, short_message=body,
                     optional=OptionalParams(receipted_message_id="c1"))


def unknown(matcher: ReceiptMatcher, message_id: str, left_at: float, to: str = "12025550173",
            body: str = "Your code is 123456, valid 10 minutes") -> Unknown:
    return Unknown(message_id, matcher.for_submit(to, "Acme", body), left_at)


def test_a_receipt_quoting_the_first_20_characters_matches_its_submit() -> None:
    matcher = ReceiptMatcher(KEY)
    submitted = matcher.for_submit("12025550173", "Acme", "Your code is 123456, valid 10 minutes")
    keys, has_text = matcher.for_receipt(receipt("+12025550173", "Acme", "Your code is 123456,"))
    assert has_text
    assert keys == submitted


@pytest.mark.parametrize(("handset", "sender", "text"), [
    ("12025550174", "Acme", "Your code is 123456,"),  # another handset
    ("12025550173", "Other", "Your code is 123456,"),  # another sender
    ("12025550173", "Acme", "Your code is 654321,"),  # another text
])
def test_anything_else_does_not_match(handset: str, sender: str, text: str) -> None:
    matcher = ReceiptMatcher(KEY)
    submitted = matcher.for_submit("12025550173", "Acme", "Your code is 123456, valid 10 minutes")
    assert matcher.for_receipt(receipt(handset, sender, text))[0].full != submitted.full


def test_text_outside_ascii_counts_as_the_question_mark_receipts_write() -> None:
    matcher = ReceiptMatcher(KEY)
    submitted = matcher.for_submit("12025550173", "Acme", "Café ouvert à 9h, à demain")
    keys, _ = matcher.for_receipt(receipt("12025550173", "Acme", "Caf? ouvert ? 9h, ?"))
    assert keys.full == submitted.full


def test_another_key_gives_other_digests() -> None:
    one = ReceiptMatcher(KEY).for_submit("12025550173", "Acme", "Hello")
    other = ReceiptMatcher(bytes(32)).for_submit("12025550173", "Acme", "Hello")
    assert one.full != other.full
    assert one.addresses != other.addresses
    assert b"12025550173" not in one.full + one.addresses


@pytest.mark.parametrize("raw", [b"", b"\xff\x00garbage", b"id: stat:", b"Text:"])
def test_a_receipt_without_readable_text_matches_on_its_addresses_only(raw: bytes) -> None:
    matcher = ReceiptMatcher(KEY)
    keys, has_text = matcher.for_receipt(receipt("12025550173", "Acme", None, raw=raw))
    assert not has_text
    assert keys.addresses == matcher.for_submit("12025550173", "Acme", "x").addresses


def test_the_oldest_of_several_matching_unknowns_is_resolved_first() -> None:
    matcher = ReceiptMatcher(KEY)
    held = HeldUnknowns([unknown(matcher, "msg_new", 20.0), unknown(matcher, "msg_old", 10.0),
                         unknown(matcher, "msg_other", 5.0, to="12025550199")], 60.0)
    keys, _ = matcher.for_receipt(receipt("12025550173", "Acme", "Your code is 123456,"))
    assert held.match(keys, has_text=True, carrier_id="c1", now=0.0) == "msg_old"
    assert held.match(keys, has_text=True, carrier_id="c2", now=0.0) == "msg_new"
    assert held.match(keys, has_text=True, carrier_id="c3", now=0.0) is None
    assert "msg_other" in held
    assert len(held) == 1


def test_an_address_only_match_needs_a_receipt_without_text() -> None:
    matcher = ReceiptMatcher(KEY)
    held = HeldUnknowns([unknown(matcher, "msg_a", 1.0)], 60.0)
    other_text, _ = matcher.for_receipt(receipt("12025550173", "Acme", "Something else"))
    assert held.match(other_text, has_text=True, carrier_id="c1", now=0.0) is None
    assert held.match(other_text, has_text=False, carrier_id="c1", now=0.0) == "msg_a"


def test_a_receipt_for_an_id_answered_since_the_restart_matches_nothing() -> None:
    matcher = ReceiptMatcher(KEY)
    held = HeldUnknowns([unknown(matcher, "msg_a", 1.0)], 60.0)
    keys, _ = matcher.for_receipt(receipt("12025550173", "Acme", "Your code is 123456,"))
    held.note_answer("c_new", 0.0)
    assert held.match(keys, has_text=True, carrier_id="c_new", now=0.0) is None
    assert held.match(keys, has_text=True, carrier_id="c_lost", now=0.0) == "msg_a"


def test_the_window_starts_once_and_then_lets_every_message_go() -> None:
    matcher = ReceiptMatcher(KEY)
    held = HeldUnknowns([unknown(matcher, "msg_a", 1.0), unknown(matcher, "msg_b", 2.0)], 60.0)
    assert held.remaining("msg_a", 1000.0) == 60.0  # not begun: the whole window
    held.begin(1000.0)
    held.begin(1030.0)  # only the first counts
    assert held.remaining("msg_never_left", 1010.0) is None
    assert held.remaining("msg_a", 1045.0) == 15.0
    held.note_answer("c_new", 1050.0)
    assert held.remaining("msg_a", 1060.0) is None  # over: sent again, and let go
    assert "msg_a" not in held
    keys, _ = matcher.for_receipt(receipt("12025550173", "Acme", "Your code is 123456,"))
    assert held.match(keys, has_text=True, carrier_id="c_late", now=1070.0) is None
    assert held._answered == set()  # what was kept to tell receipts apart, let go too
    assert held.remaining("msg_b", 1500.0) is None
    assert len(held) == 0


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        ReceiptMatcher(b"0123456789")
