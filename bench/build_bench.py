"""ChatClient onefile vs onedir on Linux: build time, size, and start-up to a shown window.

Why: ``build_scripts/build.py`` must pick one layout per OS.  onefile is one file to download
and double-click, but unpacks itself into a temp folder on every start; onedir starts straight
from its folder but is a folder users must keep together.  These figures decide the trade-off.

For each variant (onefile/onedir, each with and without ``--strip``) it builds ChatClient with
``build_scripts/build.py`` into its own folder under ``build/bench/``, then starts it
``--repeat`` times under a private Xvfb, connected to a source server on a free 127.0.0.1 port,
and times from ``Popen`` until xdotool sees a visible window.  Starts alternate between variants
so machine noise hits them alike.  "first" is the first start after the build; with
``--drop-caches`` (root only: it empties the Linux page cache before each start, which slows
everything else on the machine for a moment) every start is a cold start from disk.

Run:  .venv/bin/python bench/build_bench.py              (about a minute and a half)
      .venv/bin/python bench/build_bench.py --repeat 9 --drop-caches
Needs the build extra (``make dist`` installs it), Xvfb and xdotool.  The last line is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build_scripts" / "build.py"
WORK = ROOT / "build" / "bench"
START_TIMEOUT = 60.0


@dataclass
class Variant:
    mode: str
    strip: bool
    build_seconds: float = 0.0
    size: int = 0
    files: int = 0
    starts: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.mode}{'' if self.strip else ' (no strip)'}"

    @property
    def dist(self) -> Path:
        return WORK / f"{self.mode}-{'strip' if self.strip else 'nostrip'}"

    @property
    def exe(self) -> Path:
        return (
            self.dist / "ChatClient" / "ChatClient"
            if self.mode == "onedir"
            else (self.dist / "ChatClient")
        )


def tree(path: Path) -> tuple[int, int]:
    """(bytes, files) of a file or a folder."""
    if path.is_file():
        return path.stat().st_size, 1
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def build(variant: Variant) -> None:
    cmd = [
        sys.executable,
        str(BUILD),
        "--only",
        "client",
        "--client-mode",
        variant.mode,
        "--dist",
        str(variant.dist),
        "--work",
        str(variant.dist.with_suffix(".work")),
    ]
    cmd.append("--strip" if variant.strip else "--no-strip")
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    variant.build_seconds = time.monotonic() - start
    if out.returncode != 0:
        sys.exit(f"building {variant.name} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    variant.size, variant.files = tree(variant.dist / "ChatClient")


@contextlib.contextmanager
def xvfb() -> Iterator[str]:
    """A private X display, its number read from -displayfd (no guessing, no clashes)."""
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        sys.exit("needs Xvfb and xdotool: apt-get install xvfb xdotool")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=[write_fd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 30)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number:
            sys.exit("Xvfb did not start within 30 s")
        yield f":{number}"
    finally:
        os.close(read_fd)
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def source_server() -> Iterator[int]:
    """``python -m server`` from the checkout on a free 127.0.0.1 port; yields the port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0", "--db", ":memory:"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        port = 0
        deadline = time.monotonic() + 30
        while not port and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            if m := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
        if not port:
            sys.exit("the source server did not start: run `make server` to see why")
        # Keep draining its log so the pipe never fills while clients come and go.
        stream = proc.stderr
        threading.Thread(target=stream.read, daemon=True).start()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def window_shown(display: str) -> bool:
    found = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", "."],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        timeout=10,
        check=False,
    )
    return bool(found.stdout.split())


def time_start(variant: Variant, display: str, port: int, run: int, drop_caches: bool) -> float:
    """Seconds from Popen to a visible window; the client is then stopped by its pid."""
    if drop_caches:
        subprocess.run(["sync"], check=True, timeout=60)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    with tempfile.TemporaryDirectory(prefix="tkchat-bench-") as config:
        start = time.monotonic()
        proc = subprocess.Popen(
            [
                str(variant.exe),
                "--connect",
                f"127.0.0.1:{port}",
                "--user",
                f"bench{run}",
                "--config-dir",
                config,
            ],
            env={**os.environ, "DISPLAY": display},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not window_shown(display):
                if proc.poll() is not None:
                    sys.exit(f"{variant.exe} exited {proc.returncode} before showing a window")
                if time.monotonic() - start > START_TIMEOUT:
                    sys.exit(f"{variant.exe} showed no window within {START_TIMEOUT:.0f}s")
                time.sleep(0.02)
            return time.monotonic() - start
        finally:
            proc.terminate()  # onefile forwards SIGTERM to its child, which cleans its temp dir
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            # Let the window go before the next start looks for one.
            deadline = time.monotonic() + 10
            while window_shown(display) and time.monotonic() < deadline:
                time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="starts per variant (default 5)")
    parser.add_argument(
        "--drop-caches",
        action="store_true",
        help="empty the page cache before every start (root; true cold starts)",
    )
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        sys.exit("this benchmark measures Linux builds; run it on Linux")
    if args.drop_caches and not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        sys.exit("--drop-caches needs root (it writes /proc/sys/vm/drop_caches)")
    variants = [
        Variant("onefile", True),
        Variant("onedir", True),
        Variant("onefile", False),
        Variant("onedir", False),
    ]
    for i, v in enumerate(variants, 1):
        print(f"[build {i}/{len(variants)}] ChatClient {v.name} ...", end=" ", flush=True)
        build(v)
        print(f"{v.build_seconds:.1f}s, {v.size / 1_048_576:.1f} MiB in {v.files} files")
    timed = variants[:2]  # start-up: the two layouts as shipped (stripped)
    with xvfb() as display, source_server() as port:
        for run in range(args.repeat):
            for v in timed if run % 2 == 0 else timed[::-1]:
                v.starts.append(time_start(v, display, port, run, args.drop_caches))
            print(
                f"[start {run + 1}/{args.repeat}] "
                + ", ".join(f"{v.name} {v.starts[-1]:.2f}s" for v in timed),
                flush=True,
            )

    print(
        "\nChatClient on Linux"
        + (" (page cache dropped before each start)" if args.drop_caches else "")
    )
    print(
        f"{'variant':<20}{'build s':>8}{'size MiB':>10}{'files':>7}"
        f"{'first s':>9}{'median s':>10}{'min s':>7}{'max s':>7}"
    )
    for v in variants:
        row = f"{v.name:<20}{v.build_seconds:>8.1f}{v.size / 1_048_576:>10.1f}{v.files:>7}"
        if v.starts:
            row += (
                f"{v.starts[0]:>9.2f}{statistics.median(v.starts):>10.2f}"
                f"{min(v.starts):>7.2f}{max(v.starts):>7.2f}"
            )
        print(row)
    print(
        json.dumps(
            {
                "repeat": args.repeat,
                "drop_caches": args.drop_caches,
                "variants": [
                    {
                        "mode": v.mode,
                        "strip": v.strip,
                        "build_s": round(v.build_seconds, 2),
                        "bytes": v.size,
                        "files": v.files,
                        "start_s": [round(s, 3) for s in v.starts],
                    }
                    for v in variants
                ],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
