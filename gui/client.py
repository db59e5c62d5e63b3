"""The seed's import path, kept for programs written against it: the client now lives in the
network core, ``gui.net.client``."""

from gui.net.client import Client, MessageReceiver

__all__ = ["Client", "MessageReceiver"]
