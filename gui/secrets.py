"""Passwords the user asked to remember, in the operating system's keychain via ``keyring``
(Keychain on macOS, Credential Manager on Windows, the Secret Service on Linux desktops).

Never in the settings file: a password is kept only where the OS keeps secrets, or not at
all.  ``available`` says whether this computer has a keychain ``keyring`` can use (a server or
a bare X session often has none); every other call quietly does nothing without one, and a
keychain that fails (locked, D-Bus gone) costs a log line, never the app.

Entries: service ``TkChat``; account ``name:alice@host:port`` for a registered name's password
and ``server:host:port`` for a server's password.
"""

from __future__ import annotations

import logging
from types import ModuleType

log = logging.getLogger(__name__)

SERVICE = "TkChat"


def _keyring() -> ModuleType | None:
    """The ``keyring`` module when it has a usable backend, else None."""
    try:  # imported on first use: finding the backends takes ~0.1 s
        import keyring  # noqa: PLC0415
        from keyring.backends import fail  # noqa: PLC0415
    except Exception as exc:  # missing, or broken in a frozen build: no keychain then
        log.warning("no system keychain: cannot load keyring (%s)", exc)
        return None
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken keyring configuration
        log.warning("no system keychain: %s", exc)
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None
    return keyring


def available() -> bool:
    """Whether passwords can be remembered on this computer."""
    return _keyring() is not None


def _name_account(host: str, port: int, name: str) -> str:
    return f"name:{name.lower()}@{host.lower()}:{port}"


def _server_account(host: str, port: int) -> str:
    return f"server:{host.lower()}:{port}"


def _get(account: str) -> str | None:
    keyring = _keyring()
    if keyring is None:
        return None
    try:
        value = keyring.get_password(SERVICE, account)
    except Exception as exc:
        log.warning("cannot read the keychain: %s", exc)
        return None
    return value if isinstance(value, str) else None


def _set(account: str, secret: str) -> bool:
    """Store ``secret``, or delete the entry when it is empty; True when done."""
    keyring = _keyring()
    if keyring is None:
        return False
    try:
        if secret:
            keyring.set_password(SERVICE, account, secret)
        elif keyring.get_password(SERVICE, account) is not None:
            keyring.delete_password(SERVICE, account)
    except Exception as exc:
        log.warning("cannot write to the keychain: %s", exc)
        return False
    return True


def get_password(host: str, port: int, name: str) -> str | None:
    return _get(_name_account(host, port, name))


def set_password(host: str, port: int, name: str, password: str) -> bool:
    """Remember the password of ``name`` on this server (empty: forget it)."""
    return _set(_name_account(host, port, name), password)


def get_server_password(host: str, port: int) -> str | None:
    return _get(_server_account(host, port))


def set_server_password(host: str, port: int, password: str) -> bool:
    """Remember this server's password (empty: forget it)."""
    return _set(_server_account(host, port), password)
