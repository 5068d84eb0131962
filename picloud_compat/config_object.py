"""``cloud.config``: the settings as attributes, changeable at run time.

Reading an attribute gives the effective value (cloud.config > environment >
cloudconf.py > default). Assigning converts the value to the setting's type (or raises
ConfigurationError) and takes effect for clients created afterwards; ``commit()``
closes the current ones so the next call uses the new settings, and ``save()`` writes
them to cloudconf.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from picloud_compat import settings as settings_module


class ConfigSettings:
    """The object behind `cloud.config`: settings read and set as attributes."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in settings_module.setting_names():
            raise AttributeError(f"cloud.config has no setting {name!r}")
        return getattr(settings_module.Settings.load(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        settings_module.RUNTIME_OVERRIDES[name] = settings_module.coerce(name, value)

    def __dir__(self) -> list[str]:
        return [*settings_module.setting_names(), "commit", "save", "reset"]

    def commit(self) -> None:
        """Apply the settings now: the next `cloud.*` call reconnects with them."""
        from picloud_compat.client import session

        current = session.set_client(None)
        if current is not None:
            current.close()
        try:
            from cloud import mp

            mp.close()
        except ImportError:
            pass

    def reset(self) -> None:
        """Forget values assigned in this process."""
        settings_module.RUNTIME_OVERRIDES.clear()

    def save(self, path: str | None = None) -> str:
        """Write the effective settings to cloudconf.py (0600: it may hold secrets)."""
        target = (
            Path(path)
            if path
            else Path(settings_module.getconfigpath()) / settings_module.CONFIG_FILENAME
        )
        current = settings_module.Settings.load()
        defaults = settings_module.Settings()
        values = {
            name: getattr(current, name)
            for name in settings_module.setting_names()
            if getattr(current, name) != getattr(defaults, name)
        }
        settings_module.write_cloudconf(target, values)
        return str(target)

    def __repr__(self) -> str:
        current = settings_module.Settings.load()
        shown = {n: getattr(current, n) for n in settings_module.setting_names()}
        for secret in ("api_secretkey", "signing_key", "admin_password"):
            if shown.get(secret):
                shown[secret] = "***"
        return f"cloud.config({shown})"
