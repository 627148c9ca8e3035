"""The ``tidings`` command line."""
