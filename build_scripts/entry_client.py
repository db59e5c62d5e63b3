"""PyInstaller entry point of ChatClient: exactly ``python -m gui``, flags included.

PyInstaller freezes a script, not a ``-m`` module, so this file stands in for ``-m``.
"""

import sys

from gui.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
