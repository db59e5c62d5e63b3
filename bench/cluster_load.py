"""Cluster mode's cost: 1, 2 and 3 nodes on one redis-server vs the single SQLite process.

Same load for each setup, one run, fresh processes on free 127.0.0.1 ports: the shared load
generator (``../shared/bench/chatload.py``) logs N clients in, spread round-robin over the
setup's nodes, every client sends K messages and reads everything.  Reported per setup:
deliveries/s, p50/p99 latency (send to delivery, every client), CPU per delivery of the servers
and of redis-server (from /proc, over the whole load), and lost/duplicate/out-of-order
deliveries (all must be 0).  A second, paced load (a fixed total rate) gives latency without
queueing.

This machine has two cores shared by the servers, redis-server and the load generator, so
more nodes cannot mean more throughput here: the table shows what the cluster costs per
delivery, which is what a capacity estimate for real machines needs.

chatload connects to one port; to spread its clients, it runs here in a child process whose
``loop.create_connection`` is wrapped to hand out the nodes' ports round-robin (``--shim``).

Run:  .venv/bin/python bench/cluster_load.py                  (about a minute)
      .venv/bin/python bench/cluster_load.py --clients 50 --messages 10   (quicker)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHATLOAD = ROOT.parent / "shared" / "bench" / "chatload.py"
SETUPS = ("sqlite", "1 node", "2 nodes", "3 nodes")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[tuple[int, str]]:
    """A redis-server with the settings README recommends; yields (pid, url)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
            *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
            *("--maxmemory-policy", "noeviction"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield proc.pid, f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def server(args: list[str]) -> Iterator[tuple[int, int]]:
    """``python -m server`` on a free port; yields (pid, port) once it listens."""
    cmd = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--rate-limit", "0", "--log-level", "INFO", *args]
    # Every load client comes from 127.0.0.1: no per-address limits (as bench/server_load.py).
    cmd += ["--max-per-address", "0", "--address-rate", "0", "--login-rate", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    port = 0
    for raw in proc.stderr:
        match = re.search(rb"listening on [^ ]+:(\d+)", raw)
        if match:
            port = int(match.group(1))
            break
    if not port:
        proc.wait(10)
        raise SystemExit(f"server did not start: {' '.join(cmd)}")
    # Keep reading its log so that a full pipe never blocks it.
    drain = threading.Thread(target=proc.stderr.read, daemon=True)
    drain.start()
    try:
        yield proc.pid, port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_load(ports: list[int], clients: int, messages: int, rate: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--shim", ",".join(map(str, ports)), "--"]
    cmd += ["--port", str(ports[0]), "--clients", str(clients), "--messages", str(messages)]
    cmd += ["--rate", str(rate), "--timeout", "60", "--settle", "0.5"]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"chatload printed no result: {out.stdout[-400:]} {out.stderr[-400:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure(setup: str, folder: Path, clients: int, messages: int, rate: float) -> dict[str, Any]:
    """One setup, one load: fresh processes, CPU of every server process and redis-server."""
    with contextlib.ExitStack() as stack:
        pids: list[int] = []
        redis_pid = None
        if setup == "sqlite":
            pid, port = stack.enter_context(server(["--db", str(folder / "history.sqlite3")]))
            pids, ports = [pid], [port]
        else:
            redis_pid, url = stack.enter_context(redis_server(folder))
            ports = []
            for _ in range(int(setup[0])):
                pid, port = stack.enter_context(server(["--db", ":memory:", "--redis", url]))
                pids.append(pid)
                ports.append(port)
        before = [cpu_seconds(p) for p in pids]
        redis_before = cpu_seconds(redis_pid) if redis_pid else 0.0
        res = run_load(ports, clients, messages, rate)
        server_cpu = sum(cpu_seconds(p) for p in pids) - sum(before)
        redis_cpu = (cpu_seconds(redis_pid) - redis_before) if redis_pid else 0.0
    delivered = res.get("delivered") or 0
    bad = sum(res.get(k) or 0 for k in ("lost", "duplicates", "out_of_order", "server_errors"))
    return {
        "setup": setup,
        "deliveries_per_s": res.get("deliveries_per_s"),
        "p50_ms": res.get("lat_p50_ms"),
        "p99_ms": res.get("lat_p99_ms"),
        "server_us": server_cpu * 1e6 / delivered if delivered else None,
        "redis_us": redis_cpu * 1e6 / delivered if delivered else None,
        "delivered": delivered,
        "expected": res.get("expected_deliveries"),
        "bad": bad,
    }


def table(title: str, rows: list[dict[str, Any]]) -> str:
    head = f"{'setup':<8} {'deliv/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'srv us/d':>8} "
    head += f"{'redis us/d':>10} {'delivered':>13} {'lost+dup+ooo':>12}"
    lines = [title, head]
    for r in rows:

        def num(value: float | None, fmt: str) -> str:
            return "-" if value is None else format(value, fmt)

        lines.append(
            f"{r['setup']:<8} {num(r['deliveries_per_s'], '9.0f')} {num(r['p50_ms'], '7.2f')} "
            f"{num(r['p99_ms'], '7.2f')} {num(r['server_us'], '8.2f')} "
            f"{num(r['redis_us'], '10.2f')} {r['delivered']:>6}/{r['expected'] or 0:<6} "
            f"{r['bad']:>12}"
        )
    return "\n".join(lines)


def shim(ports: list[int], argv: list[str]) -> int:
    """Run chatload with its connections spread over ``ports`` round-robin."""
    spec = importlib.util.spec_from_file_location("chatload", CHATLOAD)
    assert spec is not None and spec.loader is not None
    chatload = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chatload)
    turn = itertools.cycle(ports)
    original = asyncio.BaseEventLoop.create_connection

    async def spread(self: Any, factory: Any, host: Any = None, port: Any = None, **kw: Any) -> Any:
        return await original(self, factory, host, next(turn), **kw)

    asyncio.BaseEventLoop.create_connection = spread  # type: ignore[assignment,method-assign]
    result: int = chatload.main(argv)
    return result


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--shim":
        rest = sys.argv[3:]
        return shim(
            [int(p) for p in sys.argv[2].split(",")], rest[1:] if rest[:1] == ["--"] else rest
        )
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=20, help="per client, as fast as possible")
    parser.add_argument("--paced-rate", type=float, default=200.0, help="total msg/s, paced load")
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated subset")
    args = parser.parse_args()
    setups = [s.strip() for s in args.setups.split(",")]
    flat: list[dict[str, Any]] = []
    paced: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tkchat-cluster-bench-") as tmp:
        for index, setup in enumerate(setups):
            folder = Path(tmp) / f"{index}-flat"
            folder.mkdir()
            flat.append(measure(setup, folder, args.clients, args.messages, 0.0))
            folder = Path(tmp) / f"{index}-paced"
            folder.mkdir()
            paced.append(measure(setup, folder, args.clients, args.messages, args.paced_rate))
            print(f"  {setup}: done", file=sys.stderr)
    print(table(f"flat out: {args.clients} clients x {args.messages} messages", flat))
    print()
    print(table(f"paced: {args.clients} clients, {args.paced_rate:g} msg/s in all", paced))
    print(json.dumps({"flat": flat, "paced": paced}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
