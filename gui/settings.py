"""``Settings``: what the app remembers between runs, as a small JSON file in the config dir.

The connect screen fills itself from the last host, port and name; theme and font size come
back as they were.  A missing, unreadable or hand-mangled file never stops the app: each field
that does not read cleanly falls back to its default, and the problem is logged.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import platformdirs

from common.protocol import DEFAULT_PORT

log = logging.getLogger(__name__)

APP_NAME = "TkChat"
SETTINGS_FILE = "settings.json"
THEMES = ("system", "light", "dark")
MIN_FONT_SIZE = 7
MAX_FONT_SIZE = 32


def default_config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    username: str = ""
    theme: str = "system"  # "system" follows the desktop's light/dark setting
    font_size: int = 11
    scrollback: int = 5000  # messages kept in the pane; older ones are trimmed
    notifications: bool = True  # a desktop notification for a mention while away
    # Whether "Remember passwords" is ticked; the passwords themselves are only ever in the
    # OS keychain (gui/secrets.py), never in this file.
    remember_passwords: bool = False
    tls: bool = False  # the connect screen's "Use TLS"
    ca_file: str = ""  # with TLS: a CA certificate to trust besides the system's

    @classmethod
    def load(cls, directory: Path) -> Settings:
        """The saved settings, or defaults for anything missing or invalid."""
        path = directory / SETTINGS_FILE
        settings = cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return settings
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable settings file %s: %s", path, exc)
            return settings
        if not isinstance(raw, dict):
            log.warning("ignoring settings file %s: not a JSON object", path)
            return settings
        for spec in fields(cls):
            value = raw.get(spec.name)
            default = getattr(settings, spec.name)
            if value is not None and type(value) is type(default):
                setattr(settings, spec.name, value)
        settings.normalise()
        return settings

    def normalise(self) -> None:
        """Clamp values a person may have edited by hand into the ranges the app supports."""
        if self.theme not in THEMES:
            self.theme = "system"
        self.font_size = max(MIN_FONT_SIZE, min(MAX_FONT_SIZE, self.font_size))
        if not 0 < self.port < 65536:
            self.port = DEFAULT_PORT
        self.scrollback = max(100, min(1_000_000, self.scrollback))

    def save(self, directory: Path) -> None:
        """Write atomically (temp file + rename) so a crash never leaves half a file."""
        path = directory / SETTINGS_FILE
        try:
            directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot save settings to %s: %s", path, exc)
