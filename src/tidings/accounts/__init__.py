"""Client accounts, sub-accounts and API keys: the tenants of Tidings."""
