"""``Notifier``: desktop notifications (a mention while the window is not focused) through
each platform's own tool, so TkChat needs no extra package:

- Linux and other freedesktop systems: ``notify-send`` (libnotify), which hands the
  notification to whatever daemon the desktop runs (GNOME Shell, KDE, dunst, mako...);
- macOS: ``osascript`` with ``display notification`` (Notification Centre);
- Windows: PowerShell showing a toast through ``Windows.UI.Notifications``.

Each notification is one short-lived child process, started without waiting; finished ones are
reaped on the next call and any still running are ended (bounded) by ``close``.  Text from the
network is passed as arguments or environment values, never spliced into a script, and is
escaped for the notification body markup some daemons read.  A missing tool means no
notifications, logged once; the bell and the title count still work.
"""

from __future__ import annotations

import html
import logging
import os
import shutil
import subprocess
import sys
import time

from gui.display import tk_safe

log = logging.getLogger(__name__)

APP_NAME = "TkChat"
BODY_CHARS = 200  # daemons show a few lines; the rest is in the window
MIN_GAP_SECONDS = 2.0  # a burst of mentions raises one notification, not a stack of them
MAX_RUNNING = 4
# PowerShell's own registered app id: toasts from an unregistered id are dropped silently.
_WINDOWS_APP_ID = r"{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\WindowsPowerShell\v1.0\powershell.exe"
_WINDOWS_TOAST = (
    "$ErrorActionPreference='Stop';"
    "[void][Windows.UI.Notifications.ToastNotificationManager,Windows.UI.Notifications,"
    "ContentType=WindowsRuntime];"
    "$m=[Windows.UI.Notifications.ToastNotificationManager];"
    "$x=$m::GetTemplateContent([Windows.UI.Notifications.ToastTemplateType]::ToastText02);"
    "$t=$x.GetElementsByTagName('text');"
    "[void]$t.Item(0).AppendChild($x.CreateTextNode($env:TKCHAT_TITLE));"
    "[void]$t.Item(1).AppendChild($x.CreateTextNode($env:TKCHAT_BODY));"
    "$m::CreateToastNotifier($env:TKCHAT_APP_ID).Show("
    "[Windows.UI.Notifications.ToastNotification]::new($x))"
)


def notification_command(title: str, body: str) -> tuple[list[str], dict[str, str]] | None:
    """The argv (and extra environment) that shows one notification here, or None."""
    if sys.platform == "darwin":
        tool = shutil.which("osascript")
        if tool is None:
            return None
        show = "display notification (item 2 of argv) with title (item 1 of argv)"
        return [tool, "-e", "on run argv", "-e", show, "-e", "end run", title, body], {}
    if sys.platform == "win32":
        tool = shutil.which("powershell") or shutil.which("pwsh")
        if tool is None:
            return None
        env = {"TKCHAT_TITLE": title, "TKCHAT_BODY": body, "TKCHAT_APP_ID": _WINDOWS_APP_ID}
        argv = [tool, "-NoProfile", "-NonInteractive", "-WindowStyle", "Hidden"]
        return [*argv, "-Command", _WINDOWS_TOAST], env
    tool = shutil.which("notify-send")
    if tool is None:
        return None
    # The freedesktop spec lets daemons read a little HTML in the body: escape it.
    argv = [tool, f"--app-name={APP_NAME}", "--category=im.received", "--", title]
    return [*argv, html.escape(body, quote=False)], {}


class Notifier:
    """See the module docstring.  Tk thread only (like the window that owns it)."""

    def __init__(self, min_gap: float = MIN_GAP_SECONDS) -> None:
        self.min_gap = min_gap
        self._running: list[subprocess.Popen[bytes]] = []
        self._last = -min_gap
        self._missing_logged = False
        self.sent = 0  # notifications started (tests read it)

    def notify(self, title: str, body: str) -> bool:
        """Show a notification unless one went out just now; True if one was started."""
        self._reap()
        now = time.monotonic()
        if now - self._last < self.min_gap or len(self._running) >= MAX_RUNNING:
            return False
        title = _clean(title, 80)
        body = _clean(body, BODY_CHARS)
        command = notification_command(title, body)
        if command is None:
            if not self._missing_logged:
                log.info("no desktop notification tool found; notifications are off")
                self._missing_logged = True
            return False
        argv, extra_env = command
        env = {**os.environ, **extra_env} if extra_env else None
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        except OSError as exc:
            log.warning("cannot show a desktop notification: %s", exc)
            return False
        self._running.append(process)
        self._last = now
        self.sent += 1
        return True

    def _reap(self) -> None:
        self._running = [p for p in self._running if p.poll() is None]

    def close(self, timeout: float = 0.2) -> None:
        """End the helper processes still running (a hung D-Bus call, say)."""
        deadline = time.monotonic() + timeout
        for process in self._running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(1.0)
        self._running = []


def _clean(text: str, limit: int) -> str:
    """One paragraph of printable text, at most ``limit`` characters."""
    text = " ".join(tk_safe(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
