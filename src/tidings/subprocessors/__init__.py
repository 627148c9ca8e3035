"""The sub-processor register: who else processes clients' personal data, the notice
to each client and its objections (docs/subprocessors.md)."""
