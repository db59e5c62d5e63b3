"""TkChat server vs the asyncio floor, same loads, one run, one table of ratios.

Why ratios: the machine is shared and noisy (2 cores, other engineers' tests), so absolute
figures move from run to run; two servers measured back to back in one run, each as a fresh
process on a free 127.0.0.1 port, give a comparison that holds.  Loads are run server by
server in alternating order (TkChat first on even repeats, the floor first on odd ones) and the
median of the repeats is reported.

Loads (all through ``../shared/bench/chatload.py``):
- fan-out at 100 and 500 users, every user sending as fast as possible: deliveries/s and server
  CPU per delivery;
- a paced load (a fixed total message rate) for the p99 latency;
- a 500-client login storm with ``--pid``: time until every login is answered, and the idle
  server RSS per logged-in connection.

Run:  .venv/bin/python bench/server_load.py            (about two minutes)
      .venv/bin/python bench/server_load.py --repeat 3 (medians of three)
      .venv/bin/python bench/server_load.py --only quiet100 --repeat 5 [--history-in-memory]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCH = ROOT.parent / "shared" / "bench"
CHATLOAD = SHARED_BENCH / "chatload.py"
FLOOR = SHARED_BENCH / "floor_server.py"
SERVERS = ("tkchat", "floor")


@dataclass(frozen=True)
class Load:
    key: str
    clients: int
    messages: int
    rate: float
    timeout: float = 120.0


def loads(scale: float) -> list[Load]:
    """The loads of the issue; ``scale`` multiplies the message counts (quick runs: 0.25)."""

    def m(n: int) -> int:
        return max(1, round(n * scale))

    return [
        Load("fanout100", 100, m(60), 0.0),
        Load("fanout500", 500, m(8), 0.0),
        Load("paced", 100, m(30), 1000.0),
        Load("quiet100", 100, m(10), 100.0),
        Load("storm500", 500, 0, 0.0),
    ]


def free_port() -> int:
    """A port the kernel just handed out; closed again so the server can bind it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout} s")


@contextlib.contextmanager
def running(kind: str, workdir: Path, *, memory: bool = False) -> Iterator[tuple[int, int]]:
    """Start one fresh server process; yield (pid, port); stop it (by its pid) afterwards.
    ``memory``: TkChat keeps its history in ``:memory:`` (no file, so no commit to disk)."""
    port = free_port()
    if kind == "tkchat":
        db = ":memory:" if memory else str(workdir / f"bench-{port}.sqlite3")
        cmd = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--db", db, "--rate-limit", "0", "--log-level", "WARNING"]
        # Every simulated user comes from 127.0.0.1: the per-address limits would cap them.
        cmd += ["--max-per-address", "0", "--address-rate", "0", "--login-rate", "0"]
    else:
        cmd = [sys.executable, str(FLOOR), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        yield proc.pid, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        assert proc.stderr is not None
        errors = proc.stderr.read().decode(errors="replace").strip()
        if errors:
            print(f"    ({kind} stderr) {errors[-600:]}", file=sys.stderr)


def chatload(load: Load, port: int, pid: int) -> dict[str, Any]:
    cmd = [sys.executable, str(CHATLOAD), "--port", str(port), "--pid", str(pid)]
    cmd += ["--clients", str(load.clients), "--messages", str(load.messages)]
    cmd += ["--rate", str(load.rate), "--timeout", str(load.timeout), "--settle", "0.5"]
    out = subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=load.timeout + 60
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"chatload printed no result: {out.stdout[-400:]} {out.stderr[-400:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def derived(load: Load, res: dict[str, Any]) -> dict[str, float | None]:
    """The figures the table compares, from one chatload result."""
    delivered = res.get("delivered") or 0
    cpu = res.get("server_cpu_s")
    return {
        "deliveries_per_s": res.get("deliveries_per_s"),
        "cpu_us_per_delivery": (cpu * 1e6 / delivered) if cpu is not None and delivered else None,
        "p99_ms": res.get("lat_p99_ms"),
        "login_s": res.get("login_s") if res.get("login_ok") == load.clients else None,
        "rss_kib_per_conn": res.get("rss_kib_per_conn"),
        "bad": float(
            (res.get("lost") or 0) + (res.get("duplicates") or 0) + (res.get("out_of_order") or 0)
        )
        if load.messages
        else 0.0,
        "errors": float((res.get("server_errors") or 0) + (res.get("json_errors") or 0)),
    }


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each load per server")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--only", default="", help="comma-separated load keys to run")
    parser.add_argument("--json", default="", help="also write every raw result to this file")
    parser.add_argument(
        "--history-in-memory",
        action="store_true",
        help="TkChat keeps its history in :memory: instead of a file: what the commit to disk "
        "costs, against a run without this flag",
    )
    args = parser.parse_args(argv)
    for needed in (CHATLOAD, FLOOR):
        if not needed.exists():
            parser.error(f"{needed} not found (the shared bench dir sits next to the repo)")
    plan = [ld for ld in loads(args.scale) if not args.only or ld.key in args.only.split(",")]
    figures: dict[tuple[str, str], list[dict[str, float | None]]] = {}
    raw: list[dict[str, Any]] = []
    steps = len(plan) * len(SERVERS) * args.repeat
    step = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tkchat-bench-") as tmp:
        for rep in range(args.repeat):
            for load in plan:
                order = SERVERS if rep % 2 == 0 else tuple(reversed(SERVERS))
                for kind in order:
                    step += 1
                    print(
                        f"[{step}/{steps}] {kind:6} {load.key:9} ({load.clients} users x "
                        f"{load.messages} msgs, rate {load.rate:g}) ...",
                        end="",
                        flush=True,
                        file=sys.stderr,
                    )
                    t0 = time.monotonic()
                    with running(kind, Path(tmp), memory=args.history_in_memory) as (pid, port):
                        res = chatload(load, port, pid)
                    res["server"], res["load"] = kind, load.key
                    raw.append(res)
                    fig = derived(load, res)
                    figures.setdefault((kind, load.key), []).append(fig)
                    print(
                        f" {time.monotonic() - t0:5.1f} s  deliveries/s "
                        f"{fig['deliveries_per_s']}  p99 {fig['p99_ms']} ms  "
                        f"login {res.get('login_s')} s  bad {fig['bad']:g}",
                        file=sys.stderr,
                        flush=True,
                    )
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))

    def get(kind: str, key: str, field: str) -> float | None:
        return median([f[field] for f in figures.get((kind, key), [])])

    rows: list[tuple[str, float | None, float | None, str, str]] = []
    checks: list[bool] = []

    def ratio_row(label: str, key: str, field: str, op: str, bound: float) -> None:
        ours, floor = get("tkchat", key, field), get("floor", key, field)
        ratio = ours / floor if ours is not None and floor else None
        ok = ratio is not None and (ratio >= bound if op == ">=" else ratio <= bound)
        checks.append(ok)
        rows.append((label, ours, floor, f"{ratio:.2f}" if ratio else "-", f"{op} {bound:g}x"))

    def absolute_row(label: str, key: str, field: str, bound: float, strict: bool) -> None:
        ours, floor = get("tkchat", key, field), get("floor", key, field)
        ok = ours is not None and (ours < bound if strict else ours <= bound)
        checks.append(ok)
        ratio = f"{ours / floor:.2f}" if ours is not None and floor else "-"
        rows.append((label, ours, floor, ratio, f"{'<' if strict else '<='} {bound:g}"))

    for key, users in (("fanout100", 100), ("fanout500", 500)):
        if any(ld.key == key for ld in plan):
            ratio_row(f"deliveries/s, {users} users", key, "deliveries_per_s", ">=", 1.5)
            ratio_row(f"server CPU us/delivery, {users}", key, "cpu_us_per_delivery", "<=", 0.5)
    if any(ld.key == "paced" for ld in plan):
        paced = next(ld for ld in plan if ld.key == "paced")
        ratio_row(f"p99 ms, paced {paced.rate:g} msg/s", "paced", "p99_ms", "<=", 1.0)
    if any(ld.key == "quiet100" for ld in plan):
        # Issue 9 section 5: the quiet case, where a thread per connection pays a wake-up per
        # request that the floor's single event loop does not.
        ratio_row("server CPU us/delivery, 100 msg/s", "quiet100", "cpu_us_per_delivery", "<=", 1.0)
    if any(ld.key == "storm500" for ld in plan):
        absolute_row("500 logins, s (all in)", "storm500", "login_s", 1.0, strict=True)
        absolute_row("idle RSS KiB/connection", "storm500", "rss_kib_per_conn", 64.0, False)
    bad = sum(sum(f["bad"] or 0 for f in figures.get(("tkchat", ld.key), [])) for ld in plan)
    errors = sum(sum(f["errors"] or 0 for f in figures.get(("tkchat", ld.key), [])) for ld in plan)
    floor_bad = sum(sum(f["bad"] or 0 for f in figures.get(("floor", ld.key), [])) for ld in plan)
    checks.append(bad == 0 and errors == 0)
    rows.append(("lost+dup+reordered (+errors)", bad + errors, floor_bad, "-", "== 0"))

    def show(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"

    header = ("metric", "TkChat", "floor", "ratio", "target", "")
    table = [
        (label, show(ours), show(floor), ratio, target, "ok" if ok else "MISS")
        for (label, ours, floor, ratio, target), ok in zip(rows, checks, strict=True)
    ]
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
    print()
    print(
        f"TkChat vs floor, {args.repeat} run(s) each, medians; "
        f"{time.monotonic() - started:.0f} s; loads: "
        + ", ".join(f"{ld.key}={ld.clients}x{ld.messages}@{ld.rate:g}" for ld in plan)
    )
    for row in [header, *table]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
