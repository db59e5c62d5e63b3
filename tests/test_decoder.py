"""The stream decoder: framing, split reads, UTF-8 splits, limits and resynchronisation."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from common.decoder import DecodeError, StreamDecoder

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
separators = st.sampled_from(["", "\n", " ", "\r\n", "\n\n", "\t "])


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[Any]:
    decoder = StreamDecoder()
    out: list[Any] = []
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        out.extend(decoder.feed(data[start:point]))
        start = point
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(objects, separators, st.booleans()), min_size=1, max_size=6),
    st.lists(st.integers(min_value=0), max_size=12),
)
def test_any_split_of_any_object_sequence_decodes_to_the_same_objects(
    items: list[tuple[dict[str, Any], str, bool]], cuts: list[int]
) -> None:
    data = b"".join(
        json.dumps(obj, ensure_ascii=ascii).encode() + sep.encode() for obj, sep, ascii in items
    )
    assert feed_in_pieces(data, cuts) == [obj for obj, _, _ in items]


def test_multibyte_character_split_between_reads() -> None:
    data = json.dumps({"content": "h\u00e9 \U0001f600 \u4e2d"}, ensure_ascii=False).encode()
    decoder = StreamDecoder()
    out: list[Any] = []
    for i in range(len(data)):
        out.extend(decoder.feed(data[i : i + 1]))
    assert out == [{"content": "h\u00e9 \U0001f600 \u4e2d"}]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), objects)
def test_garbage_then_newline_resynchronises(garbage: bytes, obj: dict[str, Any]) -> None:
    decoder = StreamDecoder()
    # Whatever the garbage, a newline and then a good object gets the object back, and
    # the decoder reports only errors (never junk objects invented from nothing).
    out = decoder.feed(garbage.replace(b"\n", b"") + b"\n" + json.dumps(obj).encode() + b"\n")
    assert out, "expected at least the good object"
    assert out[-1] == obj
    for item in out[:-1]:
        assert isinstance(item, DecodeError | dict)


def test_errors_for_each_kind_of_bad_input() -> None:
    decoder = StreamDecoder()
    out = decoder.feed(b'[1, 2]\n"text"\n{"a": tru}\n{"a": "\xff"}\n{"request": "ms\n{"ok": 1}\n')
    codes = [item.code if isinstance(item, DecodeError) else item for item in out]
    assert codes == ["bad_request"] * 5 + [{"ok": 1}]


def test_too_large_is_fatal_and_stops_decoding() -> None:
    decoder = StreamDecoder(max_bytes=1000)
    out = decoder.feed(b'{"content": "' + b"x" * 2000)
    assert len(out) == 1 and isinstance(out[0], DecodeError)
    assert out[0].code == "too_large" and out[0].fatal
    assert decoder.feed(b'"}\n{"a": 1}\n') == []


def test_object_of_exactly_the_limit_is_accepted() -> None:
    body = b'{"c": "' + b"x" * (1000 - 9) + b'"}'
    assert len(body) == 1000
    assert StreamDecoder(max_bytes=1000).feed(body) == [{"c": "x" * 991}]


def test_one_byte_at_a_time_is_linear() -> None:
    """A 60 KiB object fed byte by byte must not be re-parsed per byte (O(n^2) DoS)."""
    decoder = StreamDecoder()
    data = json.dumps({"content": "y" * 60000}).encode()
    out: list[Any] = []
    for i in range(len(data)):
        out.extend(decoder.feed(data[i : i + 1]))
    assert out == [{"content": "y" * 60000}]


def test_server_mode_answers_one_error_per_bad_line() -> None:
    decoder = StreamDecoder()
    out = decoder.feed(b'{"a": [}]}\n{"a": 1} trailing junk\n{"b": 2}\n')
    assert [item if isinstance(item, dict) else item.code for item in out] == [
        "bad_request",
        {"a": 1},
        "bad_request",
        {"b": 2},
    ]


def test_server_mode_skips_the_rest_of_a_bad_line_even_a_good_object() -> None:
    out = StreamDecoder().feed(b'{"a": tru}{"b": 2}\n{"c": 3}\n')
    assert [item if isinstance(item, dict) else item.code for item in out] == [
        "bad_request",
        {"c": 3},
    ]


def test_client_mode_resyncs_at_the_next_brace_without_newlines() -> None:
    """Bare-object servers never send a newline: one bad object must not lose the rest."""
    decoder = StreamDecoder(resync_at_newline=False)
    out = decoder.feed(b"Welcome!{\"a\": 1}{'py': 'repr'}[1]{\"b\": 2}")
    assert [item if isinstance(item, dict) else item.code for item in out] == [
        "bad_request",
        {"a": 1},
        "bad_request",
        "bad_request",
        {"b": 2},
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=20), objects), min_size=1, max_size=5),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_client_mode_finds_every_object_between_brace_free_garbage(
    items: list[tuple[bytes, dict[str, Any]]], cuts: list[int]
) -> None:
    data = b"".join(
        junk.translate(None, b'{}\n"\\') + json.dumps(obj).encode() for junk, obj in items
    )
    decoder = StreamDecoder(resync_at_newline=False)
    out: list[Any] = []
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        out.extend(decoder.feed(data[start:point]))
        start = point
    assert [item for item in out if isinstance(item, dict)] == [obj for _, obj in items]


def test_client_mode_reads_pretty_printed_objects_server_mode_cuts_them() -> None:
    pretty = json.dumps({"response": "info", "content": "a\nb", "users": ["x"]}, indent=4)
    data = (pretty + pretty).encode()
    assert StreamDecoder(resync_at_newline=False).feed(data) == [json.loads(pretty)] * 2
    out = StreamDecoder().feed(data + b"\n")
    assert out and all(isinstance(item, DecodeError) for item in out)
