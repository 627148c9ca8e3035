"""Tests for outbound webhooks."""
