"""The platform's own mail to its clients: verification, suspension, password reset, notices."""
