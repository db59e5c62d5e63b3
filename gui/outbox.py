"""Unsent messages kept over a quit: ``pending.json`` in the config dir, per server and name.

A person who quits while the server is unreachable may keep what is still "(sending…)".  The
next start that logs in to the same host, port and name takes them back (and removes them from
the file); the session then resends them with their original nonces, so a server that did
store one before the connection dropped stores it only once.  Each keeps its conversation
(``where``: ``#room`` or ``@name``; a file without it means ``#general``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

OUTBOX_FILE = "pending.json"
GENERAL_LABEL = "#general"  # where a kept message goes when the file does not say


def _key(host: str, port: int, name: str) -> str:
    return f"{name.lower()}@{host.lower()}:{port}"


def _read(path: Path) -> dict[str, list[dict[str, str]]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable unsent-messages file %s: %s", path, exc)
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        key: [
            {
                "nonce": item["nonce"],
                "text": item["text"],
                "where": item["where"] if isinstance(item.get("where"), str) else GENERAL_LABEL,
            }
            for item in items
            if isinstance(item, dict)
            and isinstance(item.get("nonce"), str)
            and isinstance(item.get("text"), str)
        ]
        for key, items in raw.items()
        if isinstance(key, str) and isinstance(items, list)
    }


def _write(path: Path, data: dict[str, list[dict[str, str]]]) -> None:
    data = {key: items for key, items in data.items() if items}
    try:
        if not data:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot keep unsent messages in %s: %s", path, exc)


def keep(
    directory: Path, host: str, port: int, name: str, messages: list[tuple[str, str, str]]
) -> None:
    """Add (nonce, text, where) for this server and name, after any kept before."""
    path = directory / OUTBOX_FILE
    data = _read(path)
    items = data.setdefault(_key(host, port, name), [])
    known = {item["nonce"] for item in items}
    items += [{"nonce": n, "text": t, "where": w} for n, t, w in messages if n not in known]
    _write(path, data)


def take(directory: Path, host: str, port: int, name: str) -> list[tuple[str, str, str]]:
    """The (nonce, text, where) kept for this server and name; they leave the file."""
    path = directory / OUTBOX_FILE
    data = _read(path)
    items = data.pop(_key(host, port, name), [])
    if items:
        _write(path, data)
    return [(item["nonce"], item["text"], item["where"]) for item in items]


def count(directory: Path) -> int:
    """How many messages the file holds, for every server (tests, the About box)."""
    return sum(len(items) for items in _read(directory / OUTBOX_FILE).values())
