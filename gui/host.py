"""``Host``: the chat this window hosts, from the window's side.

``gui/hosting.py`` runs the server and knows nothing of Tk; this module is what a window does
around it: start it once (a failure is said on the connect screen, never raised), pin its
certificate so the window's own connection checks it, tell the host what to share (the
address, the fingerprint for guests to compare), say who else is in it before the window
closes, and stop it.  ``server`` has one owner, this object; ``ChatApp`` only asks it.
Tk thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gui.connect_view import ConnectView
from gui.hosting import HostConfig, HostedServer
from gui.net.trust import TLSOptions
from server.config import default_db_path

log = logging.getLogger(__name__)


class Host:
    """See the module docstring.  ``tls_options(True)`` is how the window checks TLS servers
    (its pins); the hosted server's own certificate is pinned there."""

    def __init__(
        self,
        config: HostConfig,
        connect_view: ConnectView,
        tls_options: Callable[[bool], TLSOptions | None],
    ) -> None:
        self.config = config
        self.connect_view = connect_view
        self._tls_options = tls_options
        self.server: HostedServer | None = None

    def start(self) -> HostedServer | None:
        """The embedded server, started once; on failure the connect screen says why."""
        if self.server is None:
            try:
                self.server = HostedServer(self.config)
            except OSError as exc:  # a port we cannot bind, a folder we cannot write
                log.warning("cannot host a chat: %s", exc)
                self.connect_view.show_error(f"Cannot start a chat server here: {exc}")
            except Exception as exc:  # sqlite3.DatabaseError: "file is not a database"
                db = self.config.db or str(default_db_path())
                log.warning("cannot host a chat with history file %s: %s", db, exc)
                self.connect_view.show_error(
                    f"Cannot start a chat server here: the history file {db} cannot be "
                    f"read ({exc}). Move it away to start with an empty history."
                )
        return self.server

    def start_for_others(self, name: str) -> HostedServer | None:
        """For ``--host-local``: the server runs before anyone logs in; the connect screen
        is filled in to join it as ``name`` and says where others join."""
        server = self.start()
        if server is None:
            return None
        self.connect_view.fill(server.connect_host, server.port, name)
        self.trust_own_server()
        self.connect_view.set_busy(
            False,
            f"A chat server is running here; others join at {server.share_address()}."
            + self.fingerprint_note(),
        )
        return server

    def trust_own_server(self) -> TLSOptions | None:
        """The hosted server's certificate is ours: pin it, so our own connection checks it.
        None when the server speaks plaintext (or none runs)."""
        server = self.server
        if server is None or server.fingerprint is None:
            return None
        options = self._tls_options(True)
        assert options is not None and options.known_hosts is not None
        options.known_hosts.remember(server.connect_host, server.port, server.fingerprint)
        self.connect_view.tls_var.set(True)
        return options

    def fingerprint_note(self) -> str:
        """For the host: what people joining should see when their client asks them to trust
        this server's self-signed certificate."""
        if self.server is None or self.server.fingerprint is None:
            return ""
        return (
            " with TLS. Certificate fingerprint (SHA-256), for them to compare: "
            f"{self.server.fingerprint}"
        )

    def welcome(self) -> str | None:
        """The line the host reads once logged in to their own chat (None: not hosting)."""
        if self.server is None:
            return None
        return f"You are hosting this chat. Others join at {self.server.share_address()}" + (
            self.fingerprint_note() or "."
        )

    def status_note(self) -> str:
        """What the status line adds while online in a hosted chat ("" when not hosting)."""
        if self.server is None:
            return ""
        tls = " with TLS" if self.server.fingerprint is not None else ""
        return f" · hosting: others join at {self.server.share_address()}{tls}"

    def others(self, own_name: str) -> list[str]:
        """Who else is in the hosted chat (empty when none is hosted); ``own_name`` is left
        out whatever its case, as the server compares names."""
        if self.server is None:
            return []
        own = own_name.lower()
        return [n for n in self.server.server.room.names() if n.lower() != own]

    def stop(self) -> None:
        """End the hosted chat (bounded; guests get the shutdown notice).  Safe to repeat."""
        server, self.server = self.server, None
        if server is not None:
            server.stop(wait=True)
