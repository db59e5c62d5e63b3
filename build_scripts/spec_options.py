"""What the two spec files share: their options, the project root, the version resource.

PyInstaller executes ``ChatClient.spec`` and ``ChatServer.spec`` as Python with its build
classes (``Analysis``, ``EXE`` ...) injected as globals, which neither mypy nor ruff can follow.
So the specs stay a thin list of those calls, and every decision they take comes from here,
where it is type-checked.  ``build.py`` passes the options after ``--`` on PyInstaller's command
line (``pyinstaller ChatClient.spec -- --onefile --version 1.0.0 ...``); PyInstaller hands them to
the spec as ``sys.argv``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUNDLE_ID = "org.tkchat.ChatClient"

# Never needed at run time, but importable from the build venv: keep them out explicitly so an
# indirect import (a hook, a try/except in a library) cannot drag megabytes into the bundle.
COMMON_EXCLUDES = [
    "PIL",
    "PyInstaller",
    "pytest",
    "_pytest",
    "hypothesis",
    "mypy",
    "setuptools",
    "pip",
    "pydoc_data",
]


@dataclass(frozen=True)
class SpecOptions:
    onefile: bool
    strip: bool
    version: str
    icon_dir: Path

    @property
    def icon_ico(self) -> str:
        return str(self.icon_dir / "tkchat.ico")

    @property
    def icon_icns(self) -> str:
        return str(self.icon_dir / "tkchat.icns")

    @property
    def icon_png(self) -> str:
        return str(self.icon_dir / "tkchat-256.png")

    @property
    def exe_icon(self) -> list[str] | None:
        """The icon EXE() embeds: .ico on Windows, .icns on macOS, none on Linux (ELF has none)."""
        if sys.platform == "win32":
            return [self.icon_ico]
        if sys.platform == "darwin":
            return [self.icon_icns]
        return None


def parse(argv: list[str] | None = None) -> SpecOptions:
    """Read the options ``build.py`` put after ``--``; fail with a hint when run by hand."""
    parser = argparse.ArgumentParser(
        prog="pyinstaller <spec> --",
        description="TkChat spec options; normally passed by build_scripts/build.py, "
        "run that instead of pyinstaller directly.",
    )
    parser.add_argument("--onefile", action="store_true", help="one self-extracting file")
    parser.add_argument("--strip", action="store_true", help="strip symbols from binaries")
    parser.add_argument("--version", required=True, help="the app version, e.g. 1.0.0")
    parser.add_argument(
        "--icon-dir", type=Path, required=True, help="folder with tkchat.ico/.icns/-256.png"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return SpecOptions(
        onefile=args.onefile, strip=args.strip, version=args.version, icon_dir=args.icon_dir
    )


def version_tuple(version: str) -> tuple[int, int, int, int]:
    """``"1.2.3rc1"`` -> ``(1, 2, 3, 0)``: Windows wants four small integers."""
    parts: list[int] = []
    for piece in version.split(".")[:4]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    parts += [0] * (4 - len(parts))
    return parts[0], parts[1], parts[2], parts[3]


def windows_version_info(name: str, description: str, version: str) -> Any:
    """The VERSIONINFO resource Explorer shows under Properties > Details (Windows only)."""
    from PyInstaller.utils.win32 import versioninfo as vi  # imported late: the Windows builder

    numbers = version_tuple(version)
    strings = [
        vi.StringStruct("CompanyName", "TkChat"),
        vi.StringStruct("FileDescription", description),
        vi.StringStruct("FileVersion", version),
        vi.StringStruct("InternalName", name),
        vi.StringStruct("OriginalFilename", f"{name}.exe"),
        vi.StringStruct("ProductName", "TkChat"),
        vi.StringStruct("ProductVersion", version),
    ]
    return vi.VSVersionInfo(
        ffi=vi.FixedFileInfo(filevers=numbers, prodvers=numbers),
        kids=[
            vi.StringFileInfo([vi.StringTable("040904B0", strings)]),
            vi.VarFileInfo([vi.VarStruct("Translation", [0x0409, 1200])]),
        ],
    )
