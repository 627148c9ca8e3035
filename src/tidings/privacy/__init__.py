"""Data protection: erasure and its ledger's replay (more of the DPA's duties to come)."""
