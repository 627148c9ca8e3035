"""Policy-change notices: the operator publishes a new version of the privacy policy, the
DPA or the terms; every client is told and has a month to object (docs/policies.md)."""
