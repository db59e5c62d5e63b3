"""Abuse limits that follow an address, not a connection, and the process's file-descriptor budget.

Why per address: a limit per connection is no limit to someone who reconnects under new names.
One address once had 39,211 messages/s accepted where the per-user limit was 50/s, and 1,000
sockets that never logged in kept every other address out (issue 11).  So each address gets:

- a cap on connections open at once (``--max-per-address``): one address can never hold the
  whole ``--max-connections``, so another address always gets in;
- one token bucket over every request it sends, whatever the kind (``--address-rate``,
  ``--address-burst``); an answer costs a token more per KiB (``names`` in a crowd, a page of
  history), so one address gets about ``--address-rate`` KiB/s of answers, not 64 KiB each;
- a token bucket for logins (``--login-rate``, ``--login-burst``): cycling names costs a login each.

The per-user message limit (``--rate-limit``) still applies inside the address's bucket.

An address's account outlives its connections until its buckets would be full again: forgetting
it at the last close would hand a fresh burst to anyone who closes and reconnects.  IPv6 addresses
count by their /64 (one host usually has a whole /64 to pick from); IPv4-mapped ones as IPv4.

Thread-safety: every method takes the one lock; each holds it for a few arithmetic operations.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Open files per connection: its socket (the Outbox sends on that same socket: one each,
# tests/test_outbox.py::test_one_file_descriptor_per_connection).
FDS_PER_CONNECTION = 1
# Files the server needs besides connections: listening socket, selector, wake-up pipe,
# SQLite and its WAL/SHM, stdio, and slack for the interpreter's own.
FDS_RESERVED = 64


class TokenBucket:
    """``burst`` tokens at once, refilled at ``rate`` per second; ``rate <= 0`` means no limit.

    Not thread-safe by itself: a handler's own bucket is used by its thread only, and the
    shared per-address buckets are used under ``AddressLimits``'s lock.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = float(max(1.0, burst))
        self._tokens = self.burst
        self._stamp = time.monotonic()

    def allow(self, cost: float = 1.0, now: float | None = None) -> bool:
        """Take ``cost`` tokens if there are that many (a cost above the burst needs a full
        bucket, so an expensive request is slowed, never refused forever)."""
        if self.rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        cost = min(cost, self.burst)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def charge(self, cost: float, now: float | None = None) -> None:
        """Take ``cost`` tokens after the fact, into debt if need be (at most one burst deep):
        the next requests wait until it is paid back."""
        if self.rate <= 0:
            return
        now = time.monotonic() if now is None else now
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens = max(-self.burst, self._tokens - cost)

    def full_at(self) -> float:
        """The monotonic time at which the bucket is full again."""
        if self.rate <= 0:
            return self._stamp
        return self._stamp + (self.burst - self._tokens) / self.rate


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The per-address knobs of ``ServerConfig``; 0 turns a limit off."""

    max_connections: int = 20
    request_rate: float = 100.0
    request_burst: int = 400
    login_rate: float = 20.0
    login_burst: int = 100


@dataclass(slots=True)
class _Account:
    requests: TokenBucket
    logins: TokenBucket
    connections: int = 0


def address_key(host: str) -> str:
    """The unit the limits count: the IPv4 address, or the IPv6 /64."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a Unix socket path or a name: count it as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class AddressLimits:
    """Connections, requests and logins per address (see the module docstring)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}

    def _account(self, key: str) -> _Account:
        account = self._accounts.get(key)
        if account is None:
            policy = self.policy
            account = _Account(
                requests=TokenBucket(policy.request_rate, policy.request_burst),
                logins=TokenBucket(policy.login_rate, policy.login_burst),
            )
            self._accounts[key] = account
        return account

    def admit(self, key: str) -> bool:
        """Count a new connection from ``key``; False (and nothing counted) past the cap."""
        with self._lock:
            account = self._account(key)
            cap = self.policy.max_connections
            if cap > 0 and account.connections >= cap:
                return False
            account.connections += 1
            return True

    def release(self, key: str) -> None:
        """A connection counted by ``admit`` has closed."""
        with self._lock:
            account = self._accounts.get(key)
            if account is not None and account.connections > 0:
                account.connections -= 1

    def allow_request(self, key: str, cost: float = 1.0) -> bool:
        """Take ``cost`` from the address's request bucket."""
        with self._lock:
            return self._account(key).requests.allow(cost)

    def charge(self, key: str, cost: float) -> None:
        """Charge the address's request bucket for an answer already sent (see handler.send)."""
        with self._lock:
            self._account(key).requests.charge(cost)

    def allow_login(self, key: str) -> bool:
        """Take one login from the address's login bucket."""
        with self._lock:
            return self._account(key).logins.allow()

    def connections(self, key: str) -> int:
        with self._lock:
            account = self._accounts.get(key)
            return 0 if account is None else account.connections

    def prune(self) -> int:
        """Forget addresses with no connection whose buckets are full again; how many went.

        Called now and then from the accept thread, so the table holds only addresses that
        are connected or were recently busy."""
        now = time.monotonic()
        with self._lock:
            idle = [
                key
                for key, account in self._accounts.items()
                if account.connections == 0
                and account.requests.full_at() <= now
                and account.logins.full_at() <= now
            ]
            for key in idle:
                del self._accounts[key]
        return len(idle)

    def __len__(self) -> int:
        with self._lock:
            return len(self._accounts)


def fit_open_files(max_connections: int) -> tuple[int, str | None]:
    """Make room for ``max_connections`` in the open-files limit, as far as the OS allows.

    With 700 connections under ``ulimit -n 1024`` the server once logged "Too many open files"
    tracebacks.  Raise the soft ``RLIMIT_NOFILE`` toward what the connections need (up to the
    hard limit); if that is still too little, lower the connection limit to what fits.  Returns
    the connection limit to use and a sentence for the log (None when nothing had to change).
    """
    if sys.platform == "win32":  # no such limit on sockets there
        return max_connections, None
    import resource  # noqa: PLC0415 (POSIX only)

    need = max_connections * FDS_PER_CONNECTION + FDS_RESERVED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return max_connections, None
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.debug("cannot raise RLIMIT_NOFILE to %d: %s", target, exc)
        else:
            if target >= need:
                return max_connections, (
                    f"raised the open-files limit from {soft} to {target} "
                    f"for {max_connections} connections"
                )
            soft = target
    fits = max(1, (soft - FDS_RESERVED) // FDS_PER_CONNECTION)
    if fits >= max_connections:
        return max_connections, None
    return fits, (
        f"the open-files limit is {soft} (hard limit {hard}), too low for "
        f"{max_connections} connections: --max-connections lowered to {fits} "
        "(raise it with `ulimit -n`)"
    )
