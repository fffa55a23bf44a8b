"""The marshal codec: type fidelity, negotiation after authentication, a decoder that refuses."""

from __future__ import annotations

import contextlib
import marshal
import math
import os
import socket
from typing import Any

import ext_workfns
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.needs("marshal")

VALUES = {  # what each codec makes of it: the type fidelity table of the docs page
    "tuple": ((1, 2), [1, 2], (1, 2)),
    "int keys": ({1: "a"}, {"1": "a"}, {1: "a"}),
    "set": ({1, 2}, TypeError, {1, 2}),
    "big int": (2**100, 2**100, 2**100),
    "bytes": (b"\x00\xff", b"\x00\xff", b"\x00\xff"),  # bytes go out of band in both
}


@pytest.mark.parametrize("name", sorted(VALUES))
@pytest.mark.parametrize("codec", ["json", "marshal"])
def test_type_fidelity(ext_connect: Any, codec: str, name: str) -> None:
    sent, as_json, as_marshal = VALUES[name]
    expected = as_json if codec == "json" else as_marshal
    worker = ext_connect(ext_workfns.echo_fn, codec=codec)
    if expected is TypeError:
        with pytest.raises(TypeError):
            worker.send({"value": sent})
        return
    worker.send({"value": sent})
    got = worker.recv(timeout=10)["value"]
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("codec", ["json", "marshal"])
def test_nan_travels_in_both(ext_connect: Any, codec: str) -> None:
    worker = ext_connect(ext_workfns.echo_fn, codec=codec)
    worker.send([float("nan"), float("inf")])
    nan, inf = worker.recv(timeout=10)
    assert math.isnan(nan) and inf == float("inf")


def test_calls_work_over_marshal(ext_connect: Any) -> None:
    worker = ext_connect(ext_workfns.registry, codec="marshal")
    assert worker.call_remote("echo", (1, {2: b"x"})) == (1, {2: b"x"})


@pytest.mark.ex05_3
def test_a_code_object_is_refused_on_decode() -> None:
    import miniray
    from miniray.codec import MARSHAL

    payload = marshal.dumps(compile("print('pwned')", "<peer>", "exec"))
    with pytest.raises(miniray.ProtocolError):
        MARSHAL.decode(payload)
    with pytest.raises(miniray.ProtocolError):
        MARSHAL.decode(marshal.dumps({"ok": [1, 2, (3, compile("1", "", "eval"))]}))


def test_a_code_object_is_refused_at_send_and_from_the_wire() -> None:
    from adapters import frame

    import miniray
    from miniray.codec import MARSHAL
    from miniray.message_codec import MessageCodec

    ours, theirs = socket.socketpair()
    channel = miniray.Channel(ours, codec=MessageCodec(MARSHAL))
    with pytest.raises(TypeError, match="not plain data"):
        channel.send({"code": compile("1", "<x>", "eval")})  # nothing sent
    theirs.sendall(frame(marshal.dumps(compile("1", "<x>", "eval"))) + frame(marshal.dumps((1,))))
    with pytest.raises(miniray.ProtocolError, match="not plain data"):
        channel.recv(timeout=5)
    assert channel.recv(timeout=5) == (1,)  # the frame was whole: the stream goes on
    channel.close()
    theirs.close()


@pytest.mark.ex05_3
@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"[\xff\xff\xff\x7f",  # a list of 2**31 - 1 items in 5 bytes
        b"(\x02\x00\x00\x00N",  # a tuple that ends early
        b"NN",  # bytes after the value
        b"x" + b"\x00" * 16,  # complex: not plain data
        b"l\x00\x00\x00\x80",  # a long of -2**31 digits
        b"[" * 3000,  # nested too deep
    ],
)
def test_garbage_is_a_protocol_error(payload: bytes) -> None:
    import miniray
    from miniray.codec import MARSHAL

    with pytest.raises(miniray.ProtocolError):
        MARSHAL.decode(payload)


@pytest.mark.ex05_3
def test_a_cut_reference_and_a_self_reference_are_refused() -> None:
    import miniray
    from miniray.codec import MARSHAL

    with pytest.raises(miniray.ProtocolError):
        MARSHAL.decode(b"[\x01\x00\x00\x00r\x00\x00")  # a list of one reference, cut short
    cycle: list[Any] = []
    cycle.append(cycle)  # marshal.loads would build it: a cycle is not plain data
    with pytest.raises(miniray.ProtocolError):
        MARSHAL.decode(marshal.dumps(cycle))


def _i32(n: int) -> bytes:
    return n.to_bytes(4, "little", signed=True)


# marshal numbers only the values it may refer back to: None, True, False and references
# carry no number even with the flag bit set. A walk that numbers them points each later
# reference one value too far: here the tuple's reference to "value 0" is the tuple itself,
# and a tuple that contains itself crashes CPython when it is hashed (put in a set).
_FLAG = 0x80
SELF_CONTAINING = {
    f"flagged {name}": b"[" + _i32(2) + bytes([code | _FLAG, ord(")") | _FLAG, 1]) + b"r" + _i32(0)
    for name, code in [("None", ord("N")), ("True", ord("T")), ("False", ord("F"))]
} | {
    "flagged reference": b"["
    + _i32(3)
    + bytes([ord("i") | _FLAG])
    + _i32(5)
    + bytes([ord("r") | _FLAG])
    + _i32(0)
    + bytes([ord(")") | _FLAG, 1])
    + b"r"
    + _i32(1)
}


@pytest.mark.ex05_3
@pytest.mark.parametrize("name", sorted(SELF_CONTAINING))
def test_values_marshal_does_not_number_cannot_hide_a_cycle(name: str) -> None:
    import miniray
    from miniray.codec import MARSHAL

    payload = SELF_CONTAINING[name]
    with pytest.raises(miniray.ProtocolError):
        MARSHAL.decode(payload)


@pytest.mark.ex05_3
def test_numbering_matches_marshal_for_values_it_does_number() -> None:
    # A reference past flagged None/True/False and past a flagged reference still finds the
    # value marshal numbered: what the checker lets through, marshal decodes to the same.
    from miniray.codec import MARSHAL

    shared = [1, 2]
    value = [None, True, False, shared, shared, ("x", shared)]
    payload = marshal.dumps(value, 4)
    assert MARSHAL.decode(payload) == value
    flagged = bytearray(payload)  # the same, with the flag set on None/True/False too
    for i, byte in enumerate(flagged[5:9], start=5):
        if byte in b"NTF":
            flagged[i] = byte | _FLAG
    assert MARSHAL.decode(bytes(flagged)) == value


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.dictionaries(st.text(), inner),
    max_leaves=6,
)


@pytest.mark.ex05_3
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_fuzz_random_bytes_never_crash_the_decoder(payload: bytes) -> None:
    _decode_or_protocol_error(payload)


# slow by design: more than a learner's run gives a test (10 s, tools/exercise_runs.py)
@pytest.mark.timeout(60)
@pytest.mark.ex05_3
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain, st.data())
def test_fuzz_damaged_marshal_never_crashes_the_decoder(value: Any, data: st.DataObject) -> None:
    payload = bytearray(marshal.dumps(value, 4))
    for _ in range(data.draw(st.integers(1, 3))):  # overwrite, cut or extend a little
        action = data.draw(st.sampled_from(["flip", "flag", "cut", "grow"]))
        if action == "flag" and payload:  # the flag bit marshal reads as "may be referred to"
            payload[data.draw(st.integers(0, len(payload) - 1))] |= 0x80
        elif action == "flip" and payload:
            payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del payload[data.draw(st.integers(0, len(payload))) :]
        else:
            payload += data.draw(st.binary(min_size=1, max_size=8))
    _decode_or_protocol_error(bytes(payload))


def _decode_or_protocol_error(payload: bytes) -> None:
    import miniray
    from miniray.codec import MARSHAL

    try:
        value = MARSHAL.decode(payload)
    except miniray.ProtocolError:
        return
    assert _is_plain(value), value  # whatever got through is plain data


def _is_plain(value: Any, around: frozenset[int] = frozenset()) -> bool:
    """Plain data, and no container inside itself (``around``: the containers we are in)."""
    if isinstance(value, list | tuple | set | frozenset | dict):
        if id(value) in around:
            return False
        around |= {id(value)}
        items = [x for kv in value.items() for x in kv] if isinstance(value, dict) else value
        return all(_is_plain(v, around) for v in items)
    return value is None or isinstance(value, bool | int | float | str | bytes)


def test_a_json_only_server_refuses_marshal(servers: Any) -> None:
    import miniray

    with pytest.raises(miniray.CodecRefused, match="marshal"):
        servers.connect(ext_workfns.echo_fn, codec="marshal", server_codecs=("json",))
    worker = servers.connect(ext_workfns.echo_fn, server_codecs=("json",))
    worker.send((1, 2))
    assert worker.recv(timeout=10) == [1, 2]
    worker.close(timeout=2)


def test_an_unknown_codec_is_a_clear_error() -> None:
    import miniray

    with pytest.raises(ValueError, match="known: json, marshal"):
        miniray.Worker(ext_workfns.echo_fn, codec="pickle")


def test_an_unauthenticated_peer_never_reaches_the_decoder(tmp_path: Any) -> None:
    """A spy in the decoder (inherited by the forked server) marks every payload it sees."""
    from miniray.codec import MarshalCodec
    from miniray.wire import HEADER

    seen = tmp_path / "decoded"
    original = MarshalCodec.decode

    def spy(self: Any, payload: Any) -> Any:
        with open(seen, "ab") as f:
            f.write(b"x")
        return original(self, payload)

    MarshalCodec.decode = spy  # type: ignore[method-assign]
    try:
        from ext_servers import Servers

        servers = Servers()
        try:
            port = servers.port(ext_workfns.echo_fn)
            stranger = socket.create_connection(("127.0.0.1", port), timeout=5)
            stranger.sendall(HEADER.pack(5, 0) + marshal.dumps((1, 2)) + os.urandom(64))
            stranger.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while stranger.recv(4096):  # until the server hangs up on it
                    pass
            stranger.close()
            assert not seen.exists()
            friend = servers.connect(ext_workfns.echo_fn, codec="marshal")
            friend.send((1, 2))
            assert friend.recv(timeout=10) == (1, 2)
            friend.close(timeout=2)
            assert seen.exists()  # the spy works: an authenticated peer's bytes reach it
        finally:
            servers.stop()
    finally:
        MarshalCodec.decode = original  # type: ignore[method-assign]
