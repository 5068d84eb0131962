"""Client logging: the ``picloud`` logger writes to ``cloud.log`` in the config directory."""

from __future__ import annotations

import logging
from pathlib import Path

from picloud_compat.settings import Settings, getconfigpath

_configured: str | None = None


def configure(settings: Settings) -> None:
    """Attach the file handler once per log file (never at import time)."""
    global _configured
    if not settings.save_log:
        return
    path = Path(settings.log_filename)
    if not path.is_absolute():
        path = Path(getconfigpath()) / path
    if _configured == str(path):
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = logging.FileHandler(path)
    except OSError:
        return  # a read-only home must not break `import cloud`
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("picloud")
    logger.addHandler(handler)
    logger.setLevel(settings.log_level.upper())
    _configured = str(path)
