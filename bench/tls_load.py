"""What TLS costs the TkChat server: the same fan-out load with and without TLS, in one run.

Two fresh ``python -m server`` processes on free 127.0.0.1 ports, one plaintext and one with
``--tls-cert/--tls-key`` (a self-signed certificate made here), loaded one after the other (the
order alternates between repeats; medians are reported) by the shared load generator
``../shared/bench/chatload.py``: 100 users log in, then every user sends its messages as fast
as it can and every user reads everything.  For TLS the generator runs unchanged, with its
``loop.create_connection`` given an SSL context (see ``_chatload_child``), so both columns come
from the very same client code.

Figures: deliveries per second, server CPU per delivery (the server's own cost, less
affected by the load generator sharing the machine's two cores), and the time 100 concurrent
logins take (each TLS login adds a handshake).

Run:  .venv/bin/python bench/tls_load.py                 (about 20 s)
      .venv/bin/python bench/tls_load.py --repeat 3      (medians of three, under a minute)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from server_load import CHATLOAD, ROOT, Load, derived, free_port, wait_listening

from server.certs import make_self_signed

MODES = ("plain", "tls")


def _chatload_child(cert: str, args: list[str]) -> int:
    """Run chatload in this process with every connection wrapped in TLS (``cert`` trusted)."""
    spec = importlib.util.spec_from_file_location("chatload", CHATLOAD)
    assert spec is not None and spec.loader is not None
    chatload = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chatload)
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False
    original = asyncio.BaseEventLoop.create_connection

    @functools.wraps(original)
    async def with_tls(self: asyncio.BaseEventLoop, *a: Any, **kw: Any) -> Any:
        kw.setdefault("ssl", context)
        return await original(self, *a, **kw)

    asyncio.BaseEventLoop.create_connection = with_tls  # type: ignore[method-assign]
    code = chatload.main(args)
    return int(code or 0)


def run_one(mode: str, load: Load, cert: Path, key: Path, workdir: Path) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--db", str(workdir / f"bench-{port}.sqlite3"), "--rate-limit", "0"]
    cmd += ["--log-level", "WARNING"]
    # One loopback address stands for 100 users: the per-address limits would refuse them.
    cmd += ["--max-per-address", "0", "--address-rate", "0", "--login-rate", "0"]
    if mode == "tls":
        cmd += ["--tls-cert", str(cert), "--tls-key", str(key)]
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port, server)
        load_args = ["--port", str(port), "--pid", str(server.pid)]
        load_args += ["--clients", str(load.clients), "--messages", str(load.messages)]
        load_args += ["--rate", "0", "--timeout", str(load.timeout), "--settle", "0.5"]
        if mode == "tls":
            cmd = [sys.executable, __file__, "--chatload-tls", str(cert), "--", *load_args]
        else:
            cmd = [sys.executable, str(CHATLOAD), *load_args]
        out = subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=load.timeout + 60
        )
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        assert server.stderr is not None
        errors = server.stderr.read().decode(errors="replace").strip()
        if errors:
            print(f"    ({mode} server stderr) {errors[-600:]}", file=sys.stderr)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"chatload printed no result: {out.stdout[-400:]} {out.stderr[-400:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--chatload-tls"]:
        return _chatload_child(argv[1], argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each mode")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=60, help="messages per user")
    args = parser.parse_args(argv)
    load = Load("fanout", args.clients, args.messages, 0.0, timeout=60.0)
    figures: dict[str, list[dict[str, float | None]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="tkchat-tls-bench-") as tmp:
        workdir = Path(tmp)
        pair = make_self_signed(workdir / "cert.pem", workdir / "key.pem", ["127.0.0.1"])
        for repeat in range(args.repeat):
            order = MODES if repeat % 2 == 0 else MODES[::-1]
            for mode in order:
                result = run_one(mode, load, pair.cert, pair.key, workdir)
                row = derived(load, result)
                figures[mode].append(row)
                print(
                    f"  run {repeat + 1} {mode:5}: {row['deliveries_per_s'] or 0:,.0f} "
                    f"deliveries/s, {row['cpu_us_per_delivery'] or 0:.1f} us server CPU per "
                    f"delivery, lost/dup/out-of-order {row['bad']:.0f}, errors {row['errors']:.0f}",
                    flush=True,
                )

    def med(mode: str, field: str) -> float:
        values = [v for r in figures[mode] if (v := r[field]) is not None]
        return float(statistics.median(values)) if values else float("nan")

    print(
        f"\n{args.clients} users x {args.messages} messages each, as fast as possible "
        f"(median of {args.repeat})"
    )
    print(f"{'':28}{'plaintext':>12}{'TLS':>12}{'TLS/plain':>12}")
    for label, field in (
        ("deliveries per second", "deliveries_per_s"),
        ("server CPU us per delivery", "cpu_us_per_delivery"),
        (f"{args.clients} logins, seconds", "login_s"),
    ):
        plain, tls = med("plain", field), med("tls", field)
        print(f"{label:28}{plain:>12,.2f}{tls:>12,.2f}{tls / plain:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
