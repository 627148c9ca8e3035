"""SMPP 3.4: a pure codec (pdu, coding, receipts) and session logic, with thin asyncio adapters."""
