"""Older history, search, a store that cannot write, and retention (PROTOCOL.md, Older history
and search; Limits and errors added), against the real server over real sockets."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from common.message import Message
from common.timestamps import now_utc
from server.__main__ import build_parser, config_from_args
from server.app import ChatServer
from server.history import FTS_BATCH, HistoryStore, fts_query
from tests.conftest import ROOT, wait_for
from tests.conversations import contents, join
from tests.wire import WireClient

MakeServer = Callable[..., ChatServer]


def _client(server: ChatServer, name: str) -> WireClient:
    client = WireClient(server.port)
    client.login(name)
    return client


def _say_all(client: WireClient, texts: list[str], room: str) -> list[dict[str, object]]:
    """Send the texts in one write and return their echoes."""
    batch = b"".join(
        json.dumps({"request": "msg", "content": t, "room": room}).encode() + b"\n" for t in texts
    )
    client.send_raw(batch)
    return [client.expect("message") for _ in texts]


def test_walking_back_to_the_first_message_gives_each_exactly_once(
    make_server: MakeServer,
) -> None:
    server = make_server(rate_limit=0)
    alice = _client(server, "alice")
    try:
        join(alice, "dev")
        sent = _say_all(alice, [f"line {i}" for i in range(450)], "dev")
        alice.send("msg", "not in dev")
        alice.expect("message")
        pages: list[list[dict[str, object]]] = []
        before = None
        for _ in range(10):
            request = {"room": "dev", "limit": 200} | ({} if before is None else {"before": before})
            alice.send("history", **request)
            page = alice.expect("history", room="dev", before=before)
            items = contents(page)
            pages.insert(0, items)
            if not page["more"]:
                break
            before = items[0]["id"]
        assert [len(p) for p in pages] == [50, 200, 200]
        assert [m for p in pages for m in p] == sent
    finally:
        alice.close()


def test_paging_refuses_what_it_cannot_answer(server: ChatServer) -> None:
    alice = _client(server, "alice")
    try:
        for bad in ({"before": "x"}, {"before": 0}, {"limit": 0}, {"limit": "5"}):
            alice.send("history", **bad)
            assert alice.expect("error")["code"] == "bad_request", bad
        alice.send("history", room="elsewhere")
        assert alice.expect("error")["code"] == "not_in_room"
        alice.send("history", room="Bad Room")
        assert alice.expect("error")["code"] == "invalid_room"
        alice.send("msg", "one")
        alice.expect("message")
        alice.send("history", limit=100_000)  # more than 200 is 200; no room means general
        page = alice.expect("history")
        assert [m["content"] for m in contents(page)] == ["one"] and page["more"] is False
    finally:
        alice.close()


def test_search_wants_every_word_as_a_prefix_in_any_case_in_ones_own_rooms(
    make_server: MakeServer,
) -> None:
    server = make_server(rate_limit=0)
    alice, bob = _client(server, "alice"), _client(server, "bob")
    try:
        join(alice, "dev")
        join(bob, "secret")
        said = _say_all(alice, ["Deploy the Server", "deploy failed", "server up"], "dev")
        _say_all(bob, ["deploy the server in secret"], "secret")
        alice.send("search", "SERV dep")
        found = alice.expect("history", search="SERV dep")
        assert contents(found) == [said[0]]  # bob's room is not searched
        alice.send("search", "deploy", room="dev", limit=1)
        assert contents(alice.expect("history", room="dev")) == [said[1]]
        alice.send("search", "deploy", room="secret")
        assert alice.expect("error")["code"] == "not_in_room"
        for words in (
            '"',
            "AND OR NOT",
            "NEAR(a b)",
            "col:x",
            "*",
            "^a",
            "(",
            "a -b",
            "\U0001f600",
        ):
            alice.send("search", words)
            assert alice.expect("history")["search"] == words
        for bad in ("", "   ", "x" * 201, "\ud800"):
            alice.send("search", bad)
            assert alice.expect("error")["code"] == "bad_request"
    finally:
        alice.close()
        bob.close()


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('say "hi" NEAR') == '"say"* """hi"""* "NEAR"*'
    assert fts_query("  ") is None


def test_a_locked_history_file_gets_unavailable_at_once_and_the_server_goes_on(
    make_server: MakeServer, tmp_path: Path
) -> None:
    db = tmp_path / "chat.sqlite3"
    server = make_server(db=str(db), busy_timeout=0.2)
    alice, bob = _client(server, "alice"), _client(server, "bob")
    locker = sqlite3.connect(db, isolation_level=None)
    try:
        alice.send("msg", "kept")
        kept = alice.expect("message")
        bob.expect("message")
        locker.execute("BEGIN EXCLUSIVE")  # another program holds the file
        alice.send("msg", "not now", nonce="n1")
        refusal = alice.expect("error")
        assert refusal["code"] == "unavailable"
        alice.send("history")  # reads still work, and the connection goes on
        assert contents(alice.expect("history")) == [kept]
        locker.execute("ROLLBACK")
        alice.send("msg", "not now", nonce="n1")  # resent later with the same nonce
        stored = alice.expect("message")
        assert stored["content"] == "not now" and stored["id"] > kept["id"]
        assert bob.expect("message") == stored  # bob never saw the refused one
    finally:
        locker.close()
        alice.close()
        bob.close()


def _fill(db: Path, count: int, age: timedelta) -> None:
    store = HistoryStore(db)
    stamp = now_utc() - age
    store.insert_many((Message(f"old {i}", "ann", stamp), False, False) for i in range(count))
    store.close()


def test_keep_messages_prunes_the_oldest_and_ids_go_on(
    make_server: MakeServer, tmp_path: Path
) -> None:
    db = tmp_path / "chat.sqlite3"
    _fill(db, 1200, timedelta(0))
    server = make_server(db=str(db), keep_messages=100)
    wait_for(lambda: server.store.count() == 100, what="pruned to 100")
    alice = _client(server, "alice")
    try:
        alice.send("search", "old", limit=100)
        found = contents(alice.expect("history"))
        assert [m["content"] for m in found] == [f"old {i}" for i in range(1100, 1200)]
        alice.send("msg", "new")
        assert alice.expect("message")["id"] == 1201
    finally:
        alice.close()


def test_keep_days_prunes_what_is_older(make_server: MakeServer, tmp_path: Path) -> None:
    db = tmp_path / "chat.sqlite3"
    _fill(db, 30, timedelta(days=3))
    store = HistoryStore(db)
    store.insert_many([(Message("recent", "ann"), False, False)])
    store.close()
    server = make_server(db=str(db), keep_days=2)
    wait_for(lambda: server.store.count() == 1, what="old messages pruned")
    assert [m.text for m in server.store.recent(10)] == ["recent"]


def test_retention_flags() -> None:
    config = config_from_args(build_parser().parse_args(["--keep-days", "1.5"]))
    assert config.keep_days == 1.5 and config.keep_messages is None
    config = config_from_args(build_parser().parse_args(["--keep-messages", "1000"]))
    assert config.keep_messages == 1000 and config.keep_days is None


def test_a_db_path_under_a_regular_file_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "server", "--port", "0", "--db", str(blocker / "chat.sqlite3")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "is a file, not a folder" in done.stderr and "cannot listen" not in done.stderr


def test_the_history_file_and_its_folder_are_private(tmp_path: Path) -> None:
    db = tmp_path / "new" / "chat.sqlite3"
    HistoryStore(db).close()
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_a_history_file_from_before_rooms_is_upgraded_and_searchable(
    make_server: MakeServer, tmp_path: Path
) -> None:
    db = tmp_path / "old.sqlite3"
    old = sqlite3.connect(db)
    old.executescript(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL,"
        " sender TEXT NOT NULL, sender_key TEXT NOT NULL, text TEXT NOT NULL, nonce TEXT);"
        "INSERT INTO messages (timestamp, sender, sender_key, text, nonce)"
        " VALUES ('2026-01-01T00:00:00.000Z', 'Ann', 'ann', 'hello from before', 'x');"
    )
    old.commit()
    old.close()
    server = make_server(db=str(db))
    alice = _client(server, "alice")
    try:
        alice.send("search", "BEFO")
        (found,) = contents(alice.expect("history"))
        assert found["content"] == "hello from before" and found["id"] == 1
        assert "room" not in found  # it was said in general
    finally:
        alice.close()


def test_without_fts5_search_is_unavailable_and_the_rest_works(server: ChatServer) -> None:
    server.store.has_search = False  # as on a Python whose SQLite lacks FTS5
    alice = _client(server, "alice")
    try:
        alice.send("search", "anything")
        refusal = alice.expect("error")
        assert refusal["code"] == "unavailable" and "FTS5" in refusal["content"]
        alice.send("msg", "still here")
        alice.expect("message", content="still here")
    finally:
        alice.close()


def _index_is_whole(db: Path) -> None:
    """FTS5's own check that the index holds exactly the rows of ``messages`` (it raises
    ``sqlite3.DatabaseError`` otherwise)."""
    check = sqlite3.connect(db)
    try:
        check.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        check.close()


def _say(store: HistoryStore, texts: list[str]) -> None:
    for text in texts:
        store.insert_many([(Message(text, "ann"), False, False)])


def test_messages_are_indexed_in_batches_and_a_search_sees_every_one(tmp_path: Path) -> None:
    """Indexing waits for FTS_BATCH messages (the cost of a quiet room's commits), but a
    search first indexes what waits: it never misses a stored message."""
    db = tmp_path / "chat.sqlite3"
    store = HistoryStore(db)
    try:
        _say(store, ["zebra one", "zebra two", "zebra three"])
        (upto,) = store._reader.execute("SELECT upto FROM fts_indexed").fetchone()
        assert upto == 0  # not indexed yet
        found = store.search("zeb", ["general"], None, 10)
        assert [m.text for m in found] == ["zebra one", "zebra two", "zebra three"]
        _say(store, [f"yak {i}" for i in range(FTS_BATCH)])
        (upto,) = store._reader.execute("SELECT upto FROM fts_indexed").fetchone()
        assert upto == 3 + FTS_BATCH  # a full batch is indexed by the commit that fills it
        assert len(store.search("yak", ["general"], None, 100)) == FTS_BATCH
    finally:
        store.close()
    _index_is_whole(db)


def test_a_store_killed_before_indexing_is_indexed_when_opened(tmp_path: Path) -> None:
    """kill -9 with messages committed but not indexed: the next server indexes them."""
    db = tmp_path / "chat.sqlite3"
    store = HistoryStore(db)
    _say(store, ["quokka seen", "quokka fed"])
    # No close(): as if the process had died here.  Another process opens the file.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from server.history import HistoryStore;"
            "s = HistoryStore(sys.argv[1]);"
            "print(s._reader.execute('SELECT upto FROM fts_indexed').fetchone()[0])",
            str(db),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "2"
    store.close()
    _index_is_whole(db)


def test_deleting_indexed_and_unindexed_rows_keeps_the_index_whole(tmp_path: Path) -> None:
    db = tmp_path / "chat.sqlite3"
    store = HistoryStore(db)
    try:
        _say(store, [f"indexed {i}" for i in range(FTS_BATCH)])  # indexed by its last commit
        _say(store, [f"waiting {i}" for i in range(5)])  # not yet
        assert store.prune(FTS_BATCH + 3) == FTS_BATCH + 2
        assert [m.text for m in store.search("waiting", ["general"], None, 10)] == [
            "waiting 2",
            "waiting 3",
            "waiting 4",
        ]
        assert store.search("indexed", ["general"], None, 10) == []
    finally:
        store.close()
    _index_is_whole(db)


def test_a_history_file_indexed_by_the_old_trigger_keeps_its_index(tmp_path: Path) -> None:
    """Files from before batched indexing kept the index in step with a trigger on insert:
    they open indexed up to their newest row, and the trigger is gone."""
    db = tmp_path / "chat.sqlite3"
    HistoryStore(db).close()
    old = sqlite3.connect(db, isolation_level=None)
    old.executescript(
        "DROP TRIGGER messages_fts_unindex; DROP TABLE fts_indexed;"
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
        " INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text); END;"
        "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"
        " INSERT INTO messages_fts (messages_fts, rowid, text)"
        " VALUES ('delete', old.id, old.text); END;"
        "INSERT INTO messages (timestamp, sender, sender_key, text, room)"
        " VALUES ('2026-01-01T00:00:00.000Z', 'Ann', 'ann', 'walrus before', 'general');"
    )
    old.close()
    store = HistoryStore(db)
    try:
        triggers = {
            name
            for (name,) in store._reader.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            )
        }
        assert triggers == {"messages_fts_unindex"}
        _say(store, ["walrus after"])
        found = store.search("walrus", ["general"], None, 10)
        assert [m.text for m in found] == ["walrus before", "walrus after"]
        assert store.prune(2) == 1  # the old row leaves the index with it
    finally:
        store.close()
    _index_is_whole(db)
