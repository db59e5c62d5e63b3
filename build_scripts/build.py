"""Build ChatClient and ChatServer for this OS with PyInstaller: ``python build_scripts/build.py``.

``make dist`` and the release workflow both call this one script, so a maintainer's build and a
release build are the same thing.  PyInstaller cannot cross-compile: each OS builds its own.

What it does, each step printed as it goes:
1. reads the version from pyproject.toml (the one place it is written);
2. derives the .ico/.icns/.png icons from the committed ``gui/assets/tkchat.png``;
3. runs PyInstaller on ``ChatServer.spec`` and ``ChatClient.spec`` (full logs in
   ``build/logs/``, the key phases echoed with elapsed seconds, so a slow step shows as slow);
4. checks the results: sv-ttk's theme files are inside the client, the server answers ``--help``;
5. prints what it made and how big it is.

Defaults per OS (figures and reasoning: ``bench/build_bench.py`` and README "Build the binaries"):
ChatServer is one file everywhere.  ChatClient is one file on Windows and Linux, where one file to
double-click is what a user expects and the extra cold start is small; on macOS it is a folder
inside ChatClient.app, since PyInstaller is deprecating onefile app bundles.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

APPS = ("server", "client")
SPEC = {"server": HERE / "ChatServer.spec", "client": HERE / "ChatClient.spec"}
NAME = {"server": "ChatServer", "client": "ChatClient"}
DEFAULT_CLIENT_MODE = {"win32": "onefile", "darwin": "onedir", "linux": "onefile"}
# PyInstaller log lines worth echoing as progress (everything goes to the log file).
PHASES = re.compile(
    r"INFO: (Analyzing (?!run-time)|Looking for dynamic libraries|Build complete|"
    r"Building (PYZ|PKG|EXE|COLLECT|BUNDLE)(?! because)(?!.*completed))"
)
SV_TTK_NEEDED = ("sv_ttk/sv.tcl", "sv_ttk/theme/light.tcl", "sv_ttk/theme/dark.tcl")
PYINSTALLER_TIMEOUT = 900.0


class BuildError(Exception):
    """A step failed; the message says what happened and what to do."""


@dataclass
class Made:
    app: str
    path: Path
    mode: str
    seconds: float

    @property
    def size(self) -> int:
        return tree_size(self.path)


def platform_key() -> str:
    return "win32" if sys.platform == "win32" else "darwin" if sys.platform == "darwin" else "linux"


def project_version(root: Path = ROOT) -> str:
    """The ``[project] version`` of pyproject.toml: the same number the package metadata has."""
    with (root / "pyproject.toml").open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    if not isinstance(version, str):
        raise BuildError("pyproject.toml: [project] version must be a string like '1.0.0'")
    return version


def tree_size(path: Path) -> int:
    """Bytes of a file, or of every file below a folder (symlinks counted once, not followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_symlink() or p.is_file())


def human(size: int) -> str:
    return f"{size / 1_048_576:.1f} MiB"


def artefact_path(app: str, mode: str, dist: Path) -> Path:
    """Where PyInstaller puts what users get for ``app`` built as ``mode`` on this OS."""
    name = NAME[app]
    exe = name + (".exe" if sys.platform == "win32" else "")
    if app == "client" and sys.platform == "darwin":
        return dist / f"{name}.app"
    if mode == "onedir":
        return dist / name
    return dist / exe


def executable_in(app: str, artefact: Path) -> Path:
    """The program file to run inside an artefact (itself for onefile)."""
    name = NAME[app] + (".exe" if sys.platform == "win32" else "")
    if artefact.suffix == ".app":
        return artefact / "Contents" / "MacOS" / NAME[app]
    if artefact.is_dir():
        return artefact / name
    return artefact


def run_pyinstaller(
    app: str, mode: str, *, strip: bool, version: str, icon_dir: Path, dist: Path, work: Path
) -> Made:
    """Run one spec, echo its phases, keep its full log; BuildError with the log tail on failure."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{NAME[app]}.log"
    cmd = [
        sys.executable,
        "-m",
        "PyInstaller",
        str(SPEC[app]),
        "--noconfirm",
        "--clean",
        "--log-level",
        "INFO",
        "--distpath",
        str(dist),
        "--workpath",
        str(work / "pyinstaller" / f"{NAME[app]}-{mode}"),
        "--",
        "--version",
        version,
        "--icon-dir",
        str(icon_dir),
    ]
    if mode == "onefile":
        cmd.append("--onefile")
    if strip:
        cmd.append("--strip")
    # A stale onedir folder and a new onefile of the same name cannot coexist: clear the old one.
    for stale in (dist / NAME[app], dist / (NAME[app] + ".exe"), dist / f"{NAME[app]}.app"):
        remove(stale)
    start = time.monotonic()
    tail: list[str] = []
    with log_path.open("w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when PyInstaller exits and closes its output
            log_file.write(line)
            tail = [*tail[-39:], line.rstrip()]
            elapsed = time.monotonic() - start
            if PHASES.search(line) or "WARNING: Library not found" in line or "ERROR" in line:
                message = line.split("INFO: ", 1)[-1].strip()
                print(f"    [{elapsed:5.1f}s] {message[:110]}", flush=True)
            if elapsed > PYINSTALLER_TIMEOUT:
                proc.kill()
                break
        code = proc.wait(timeout=60)
    seconds = time.monotonic() - start
    if code != 0:
        shown = "\n".join("      " + t for t in tail[-25:])
        raise BuildError(
            f"PyInstaller failed building {NAME[app]} (exit {code}) after {seconds:.0f}s.\n"
            f"Last lines of {log_path}:\n{shown}\n"
            "Read the full log above; a missing module usually means the project is not "
            "installed in this Python (pip install -e '.[build]')."
        )
    path = artefact_path(app, mode, dist)
    if not path.exists():
        raise BuildError(f"PyInstaller said it succeeded but {path} is missing; see {log_path}")
    return Made(app, path, mode, seconds)


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def bundled_names(artefact: Path) -> set[str]:
    """Every file name inside a build, with '/' separators: folder contents or onefile archive."""
    if artefact.is_dir():
        return {p.relative_to(artefact).as_posix() for p in artefact.rglob("*") if p.is_file()}
    from PyInstaller.archive.readers import CArchiveReader

    names: set[str] = set(CArchiveReader(str(artefact)).toc.keys())
    return {n.replace("\\", "/") for n in names}


def check_client(made: Made) -> str:
    """sv-ttk's Tcl theme and its PNGs must be inside, or the app falls back to plain ttk."""
    names = bundled_names(made.path)
    missing = [n for n in SV_TTK_NEEDED if not any(x.endswith(n) for x in names)]
    pngs = [n for n in names if "sv_ttk/theme/" in n and n.endswith(".png")]
    if missing or not pngs:
        raise BuildError(
            f"{made.path}: sv-ttk theme files missing ({', '.join(missing) or 'no theme PNGs'}). "
            "pyinstaller-hooks-contrib's hook-sv_ttk should collect them: upgrade it "
            "(pip install -U pyinstaller-hooks-contrib) or add collect_data_files('sv_ttk') "
            "to ChatClient.spec's datas."
        )
    return f"sv-ttk theme inside: {len(pngs)} PNGs, {len(SV_TTK_NEEDED)} Tcl files checked"


def check_server(made: Made) -> str:
    """The frozen server must start and parse its flags, the cheapest proof it runs at all."""
    exe = executable_in("server", made.path)
    try:
        out = subprocess.run(
            [str(exe), "--help"], capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{exe} --help did not answer within 120 s") from exc
    if out.returncode != 0 or "--port" not in out.stdout:
        raise BuildError(
            f"{exe} --help failed (exit {out.returncode}):\n{out.stderr[-2000:]}\n"
            "A ModuleNotFoundError here means a hidden import is missing in ChatServer.spec."
        )
    return "ChatServer --help answers"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", choices=APPS, action="append", help="build only this one (repeatable)"
    )
    parser.add_argument(
        "--client-mode",
        choices=("onefile", "onedir"),
        default=DEFAULT_CLIENT_MODE[platform_key()],
        help="ChatClient as one file or a folder (default for this OS: %(default)s; "
        "macOS is always onedir)",
    )
    parser.add_argument(
        "--strip",
        action=argparse.BooleanOptionalAction,
        default=sys.platform.startswith("linux"),
        help="strip symbols from the bundled libraries (default: on Linux only; macOS "
        "signatures break and Windows has no strip tool)",
    )
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument("--work", type=Path, default=ROOT / "build", help="scratch folder")
    args = parser.parse_args(argv)
    apps = [a for a in APPS if a in (args.only or APPS)]
    client_mode = "onedir" if sys.platform == "darwin" else args.client_mode
    steps = 3 + len(apps)
    total_start = time.monotonic()

    try:
        import PyInstaller
        from icons import derive_icons
    except ImportError as exc:
        print(
            f"error: {exc.name} is not installed in {sys.executable}.\n"
            "Install the build tools with: pip install -e '.[build]'  (or just run: make dist)",
            file=sys.stderr,
        )
        return 2

    try:
        version = project_version()
        print(
            f"[1/{steps}] TkChat {version} for {platform_key()} (PyInstaller "
            f"{PyInstaller.__version__}, Python {sys.version.split()[0]}, strip={args.strip})"
        )
        icon_dir = args.work / "icons"
        icons = derive_icons(icon_dir)
        print(
            f"[2/{steps}] icons derived from gui/assets/tkchat.png: "
            + ", ".join(p.name for p in icons.values())
        )
        made: list[Made] = []
        for i, app in enumerate(apps, start=3):
            mode = client_mode if app == "client" else "onefile"
            print(
                f"[{i}/{steps}] building {NAME[app]} ({mode}); "
                f"full log: {args.work / 'logs' / (NAME[app] + '.log')}",
                flush=True,
            )
            made.append(
                run_pyinstaller(
                    app,
                    mode,
                    strip=args.strip,
                    version=version,
                    icon_dir=icon_dir,
                    dist=args.dist,
                    work=args.work,
                )
            )
        print(f"[{steps}/{steps}] checking the results", flush=True)
        for m in made:
            print("    " + (check_client(m) if m.app == "client" else check_server(m)))
    except BuildError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1

    print(f"\nBuilt in {time.monotonic() - total_start:.0f}s:")
    for m in made:
        kind = "folder" if m.path.is_dir() else "file"
        print(
            f"  {m.path.relative_to(ROOT) if m.path.is_relative_to(ROOT) else m.path}"
            f"  {human(m.size):>10}  {m.mode} {kind}, {m.seconds:.0f}s"
        )
    run = executable_in(apps[-1], made[-1].path)
    print(f"Run it: {run}" + (" --help" if apps[-1] == "server" else ""))
    return 0


if __name__ == "__main__":
    # Line-buffered progress even when piped (CI logs, make).
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
