"""Sender numbers owned by accounts; inbound messages are routed by them."""
