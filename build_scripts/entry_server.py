"""PyInstaller entry point of ChatServer: exactly ``python -m server``, flags included.

PyInstaller freezes a script, not a ``-m`` module, so this file stands in for ``-m``.
"""

import sys

from server.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
