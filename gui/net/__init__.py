"""The client's network core, with no Tk in it: ``Client`` and its one receiver thread
(``client``), the values it hands out (``events``), TLS trust (``trust``) and the requests
addressed to a conversation (``conversation_requests``).  The Tk app (``python -m gui``) and the
terminal client (``gui.terminal``) are both built on it; ``tests/test_layout.py`` checks that
nothing here imports tkinter, even indirectly.
"""
