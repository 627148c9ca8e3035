"""Run Alembic programmatically (in a thread: env.py runs its own event loop)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from tidings.core.settings import Settings

HERE = Path(__file__).parent


def alembic_config(url: str, settings: Settings | None = None) -> Config:
    """``settings`` lets a data migration reach the key store (see 0010)."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    config.attributes["settings"] = settings
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return config


def upgrade(url: str, revision: str = "head", *, settings: Settings | None = None) -> None:
    command.upgrade(alembic_config(url, settings), revision)
