"""Carrier connections the operator configures, and the rules that route messages to them."""
