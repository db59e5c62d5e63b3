"""The TkChat server: ``python -m server``.  See ``server.app`` for the thread layout."""

from server.app import ChatServer
from server.config import ServerConfig

__all__ = ["ChatServer", "ServerConfig"]
