"""The TkChat client: the network core (``gui.net``), the Tk app (``python -m gui``) and the
terminal client (``gui.terminal``)."""
