"""``RedisAccounts``: registered names and password hashes in Redis, for cluster mode.

Same methods as ``server.accounts.Accounts``, so that a name registered through one node needs
its password on every node.  The hashes are made and checked by ``server.accounts`` (scrypt,
outside any lock); Redis keeps one hash ``tkchat:accounts`` of lower-case name -> stored hash.
When Redis cannot be reached every method raises ``AccountsUnavailable`` (the handler answers
``unavailable``): a registered name is never taken for unregistered because Redis was down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.accounts import AccountStore, AccountsUnavailable

if TYPE_CHECKING:
    import redis

KEY = "tkchat:accounts"


class RedisAccounts(AccountStore):
    def __init__(self, url: str) -> None:
        import redis  # noqa: PLC0415 - cluster mode only
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415

        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self._redis: redis.Redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            retry=Retry(NoBackoff(), 0),
        )

    def stored_hash(self, name: str) -> str | None:
        try:
            stored: Any = self._redis.hget(KEY, name.lower())
        except self._errors as exc:
            raise AccountsUnavailable(str(exc)) from exc
        return None if stored is None else str(stored)

    def _store_hash(self, name: str, hashed: str) -> None:
        try:
            self._redis.hset(KEY, name.lower(), hashed)
        except self._errors as exc:
            raise AccountsUnavailable(str(exc)) from exc

    def close(self) -> None:
        self._redis.close()
