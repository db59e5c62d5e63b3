"""``python -m server`` as a subprocess for the bench scripts: started on 127.0.0.1, a free
port and no history file, its port read off its first log lines.

One copy of what several scripts need.  The log is read to the end on a thread (a server
writing into a full pipe would block) and kept, so a script can count what it said.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_server(*flags: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    """The server with ``flags`` added; returns it, its port and its log (growing)."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0"),
            *("--db", ":memory:", *flags),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stream = proc.stderr
    assert stream is not None
    log: list[str] = []
    for line in stream:
        log.append(line.rstrip())
        found = re.search(r"listening on [^ ]+:(\d+)", line)
        if found:
            reader = (line.rstrip() for line in stream)
            threading.Thread(target=log.extend, args=(reader,), daemon=True).start()
            return proc, int(found.group(1)), log
    raise RuntimeError(f"the server did not start: {log[-3:]}")
