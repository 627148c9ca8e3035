"""Tidings: a self-hostable communications platform."""

__version__ = "0.1.0"
