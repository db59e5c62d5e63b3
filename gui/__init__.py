"""The TkChat client: network core (``gui.client``), Tk app (``python -m gui``), terminal client."""
