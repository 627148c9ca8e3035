"""Outbound webhooks: signing, retry backoff and HTTP delivery."""
