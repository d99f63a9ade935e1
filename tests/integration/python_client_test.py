#!/usr/bin/python3
"""Integration tests: swirl's example servers driven by real Python clients.

Two kinds of client are used:
  * python3-websockets 10.4 (Debian's, hence /usr/bin/python3) for normal
    traffic, as a real third-party client would send it;
  * raw asyncio TCP streams with hand-built frames for handshake checks and
    protocol violations that a well-behaved library refuses to produce.

Usage:
    /usr/bin/python3 python_client_test.py --echo-server PATH --auth-server PATH [NAME_SUBSTRING...]

Each server is started with `--host 127.0.0.1 --port 0`; the real port is read
from its `listening on ws://127.0.0.1:PORT` line. The last line printed is
`N passed, N failed`; the exit status is non-zero if anything failed.
"""

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import os
import signal
import struct
import sys
import time
import unittest

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

import harness
from harness import IO_TIMEOUT, ServerProcess, frame, within

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SIZES = [0, 1, 125, 126, 65535, 65536, 4 * 1024 * 1024]

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
RSV1 = 0b100  # the `rsv` argument of frame() is the 3-bit RSV1|RSV2|RSV3 field

# Autobahn 6.3.1: "κόσμε" followed by an encoded UTF-16 surrogate (ed a0 80).
INVALID_UTF8 = bytes.fromhex("cebae1bdb9cebcceb5eda080656469746564")

ARGS = None  # parsed command line, set by harness.run()


# --------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------


SERVERS = harness.Servers()
tearDownModule = SERVERS.tear_down_module


def server_executable(kind):
    return {"echo": ARGS.echo_server, "auth": ARGS.auth_server}[kind]


def server_port(kind, *flags):
    """Port of a running `kind` ('echo' or 'auth') server with `flags`, started on first use."""
    return SERVERS.shared(server_executable(kind), *flags).port


# --------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------


def text_of_length(n):
    """An ASCII str of exactly n characters (hence n UTF-8 bytes)."""
    pattern = "swirl echoes text 0123456789 abcdefghijklmnopqrstuvwxyz! "
    return (pattern * (n // len(pattern) + 1))[:n]


def ws_url(port, path="/"):
    return f"ws://127.0.0.1:{port}{path}"


def ws_connect(port, path="/", **kwargs):
    """python3-websockets client with bounded waits and no keepalive pings."""
    options = dict(open_timeout=IO_TIMEOUT, close_timeout=IO_TIMEOUT,
                   ping_interval=None, max_size=None)
    options.update(kwargs)
    return websockets.connect(ws_url(port, path), **options)


async def recv(ws):
    return await within(ws.recv(), waiting_for="a message")


# --------------------------------------------------------------------------
# Raw HTTP / WebSocket helpers
# --------------------------------------------------------------------------


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def upgrade_request(port, path="/", key=None, version="13", extra_headers=()):
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key or new_key()}",
        f"Sec-WebSocket-Version: {version}",
        *extra_headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_tcp(port):
    return await within(asyncio.open_connection("127.0.0.1", port))


async def close_tcp(writer):
    writer.close()
    with contextlib.suppress(Exception):
        await within(writer.wait_closed(), 2)


async def read_http_response(reader):
    """(status, headers) of an HTTP response head; header names are lower-cased."""
    head = await within(reader.readuntil(b"\r\n\r\n"), waiting_for="an HTTP response")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
    protocol, status, *_ = status_line.split(" ", 2)
    if not protocol.startswith("HTTP/1."):
        raise AssertionError(f"not an HTTP response: {status_line!r}")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), headers


async def http_exchange(port, request):
    """Send raw request bytes on a fresh connection; return (status, headers)."""
    reader, writer = await open_tcp(port)
    try:
        writer.write(request)
        await within(writer.drain())
        return await read_http_response(reader)
    finally:
        await close_tcp(writer)


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


Frame = collections.namedtuple("Frame", "fin rsv opcode payload")


class RawWebSocket:
    """A WebSocket connection driven byte by byte over a plain TCP stream."""

    def __init__(self, test, reader, writer, headers):
        self.test, self.reader, self.writer, self.headers = test, reader, writer, headers

    async def send(self, *frames):
        self.writer.write(b"".join(frames))
        # The server may already have failed the connection; that is checked by the reads.
        with contextlib.suppress(ConnectionError):
            await within(self.writer.drain())

    async def recv_frame(self):
        try:
            return await self._read_frame()
        except (asyncio.IncompleteReadError, ConnectionResetError) as error:
            self.test.fail(f"connection closed instead of a complete frame arriving ({error!r})")

    async def _read_frame(self):
        b0, b1 = await within(self.reader.readexactly(2), waiting_for="a frame")
        self.test.assertFalse(b1 & 0x80, "server frames must not be masked")
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await within(self.reader.readexactly(2)))
        elif length == 127:
            (length,) = struct.unpack("!Q", await within(self.reader.readexactly(8)))
        payload = await within(self.reader.readexactly(length))
        return Frame(fin=bool(b0 & 0x80), rsv=(b0 >> 4) & 0x7, opcode=b0 & 0x0F, payload=payload)

    async def expect_frame(self, opcode, payload):
        received = await self.recv_frame()
        self.test.assertEqual((received.opcode, received.fin, received.rsv),
                              (opcode, True, 0), f"unexpected frame {received}")
        self.test.assertEqual(received.payload, payload)

    async def expect_close(self, code):
        """The next frame is a close carrying `code`; afterwards the server drops TCP."""
        received = await self.recv_frame()
        self.test.assertEqual(received.opcode, OP_CLOSE,
                              f"expected a close frame with code {code}, got {received}")
        self.test.assertGreaterEqual(len(received.payload), 2, "close frame without a code")
        self.test.assertEqual(struct.unpack("!H", received.payload[:2])[0], code)
        # Answer like a well-behaved client would; the server must then close TCP.
        await self.send(frame(OP_CLOSE, received.payload[:2]))
        await self.expect_tcp_closed()

    async def expect_tcp_closed(self, timeout=5):
        try:
            rest = await within(self.reader.read(), timeout,  # read() = until EOF
                                waiting_for="the server to close the TCP connection")
        except ConnectionResetError:
            return
        self.test.assertEqual(rest, b"", "server sent bytes after its close frame")


# --------------------------------------------------------------------------
# Test case base
# --------------------------------------------------------------------------


class SwirlTestCase(harness.DeadlineTestCase):
    """Tests with a deadline each (see harness), plus raw helpers."""

    def assert_same_payload(self, received, expected):
        # Avoid assertEqual's diff, which is unusable (and slow) on megabyte payloads.
        self.assertIs(type(received), type(expected),
                      f"expected a {type(expected).__name__} message, got {type(received).__name__}")
        self.assertEqual(len(received), len(expected), "echoed message has the wrong length")
        self.assertTrue(received == expected, "echoed message differs from what was sent")

    @contextlib.asynccontextmanager
    async def raw_websocket(self, port, path="/", extra_headers=()):
        """Upgrade a plain TCP connection (checking the 101 response) and yield a RawWebSocket."""
        key = new_key()
        reader, writer = await open_tcp(port)
        try:
            writer.write(upgrade_request(port, path, key, extra_headers=extra_headers))
            await within(writer.drain())
            status, headers = await read_http_response(reader)
            self.assertEqual(status, 101, f"upgrade refused: {headers}")
            self.assertEqual(headers.get("upgrade", "").lower(), "websocket")
            self.assertIn("upgrade", headers.get("connection", "").lower())
            self.assertEqual(headers.get("sec-websocket-accept"), accept_key(key))
            yield RawWebSocket(self, reader, writer, headers)
        finally:
            await close_tcp(writer)

    async def assert_violation_closes_with(self, code, *frames, port=None):
        """Send `frames` on a fresh echo connection; the server must close with `code`."""
        async with self.raw_websocket(port or server_port("echo")) as ws:
            await ws.send(*frames)
            await ws.expect_close(code)


# --------------------------------------------------------------------------
# Tests with python3-websockets
# --------------------------------------------------------------------------


class EchoWithWebsocketsLibrary(SwirlTestCase):

    async def test_text_messages_of_every_length_class_are_echoed_as_text(self):
        async with ws_connect(server_port("echo")) as ws:
            for size in SIZES:
                with self.subTest(size=size):
                    message = text_of_length(size)
                    await ws.send(message)
                    self.assert_same_payload(await recv(ws), message)

    async def test_binary_messages_of_every_length_class_are_echoed_as_binary(self):
        async with ws_connect(server_port("echo")) as ws:
            for size in SIZES:
                with self.subTest(size=size):
                    message = os.urandom(size)
                    await ws.send(message)
                    self.assert_same_payload(await recv(ws), message)

    async def test_multibyte_utf8_text_is_echoed_unchanged(self):
        message = "κόσμε – héllo wörld ✓ 🎉 " * 500
        async with ws_connect(server_port("echo")) as ws:
            await ws.send(message)
            self.assert_same_payload(await recv(ws), message)

    async def test_fragmented_text_message_is_echoed_as_one_message(self):
        async with ws_connect(server_port("echo")) as ws:
            await ws.send(["swirl ", "reassembles ", "fragmented ", "text"])
            self.assert_same_payload(await recv(ws), "swirl reassembles fragmented text")

    async def test_fragmented_binary_message_from_async_iterator_is_echoed_as_one_message(self):
        chunks = [os.urandom(1000), b"", os.urandom(70000), b"\x00\xff"]

        async def fragments():
            for chunk in chunks:
                yield chunk

        async with ws_connect(server_port("echo")) as ws:
            await ws.send(fragments())
            self.assert_same_payload(await recv(ws), b"".join(chunks))

    async def test_ping_with_payload_is_answered_by_pong(self):
        async with ws_connect(server_port("echo")) as ws:
            pong_waiter = await ws.ping(b"swirl-ping")  # resolves only on a matching pong
            await within(pong_waiter, waiting_for="a pong")

    async def test_client_close_code_4001_is_echoed_by_server(self):
        async with ws_connect(server_port("echo")) as ws:
            await ws.send("about to leave")
            self.assertEqual(await recv(ws), "about to leave")
            await within(ws.close(code=4001, reason="bye"))
            self.assertEqual(ws.close_code, 4001)

    async def test_message_of_exactly_max_message_bytes_is_echoed(self):
        async with ws_connect(server_port("echo", "--max-message", "1024")) as ws:
            message = os.urandom(1024)
            await ws.send(message)
            self.assert_same_payload(await recv(ws), message)

    async def test_message_larger_than_max_message_is_closed_with_1009(self):
        async with ws_connect(server_port("echo", "--max-message", "1024")) as ws:
            with self.assertRaises(ConnectionClosed) as caught:
                await ws.send(os.urandom(2048))
                await recv(ws)
            self.assertIsNotNone(caught.exception.rcvd, "server sent no close frame")
            self.assertEqual(caught.exception.rcvd.code, 1009)

    async def test_connection_that_completed_handshake_outlives_handshake_timeout(self):
        async with ws_connect(server_port("echo", "--handshake-timeout", "1")) as ws:
            await asyncio.sleep(1.5)
            await ws.send("still here")
            self.assertEqual(await recv(ws), "still here")


class SubprotocolsWithWebsocketsLibrary(SwirlTestCase):
    FLAGS = ("--subprotocol", "chat", "--subprotocol", "superchat")

    async def test_server_selects_the_one_subprotocol_offered(self):
        async with ws_connect(server_port("echo", *self.FLAGS), subprotocols=["superchat"]) as ws:
            self.assertEqual(ws.subprotocol, "superchat")

    async def test_server_picks_subprotocol_in_its_own_order_of_preference(self):
        async with ws_connect(server_port("echo", *self.FLAGS),
                              subprotocols=["superchat", "chat"]) as ws:
            self.assertEqual(ws.subprotocol, "chat")

    async def test_no_subprotocol_is_selected_when_client_offers_none(self):
        async with ws_connect(server_port("echo", *self.FLAGS)) as ws:
            self.assertIsNone(ws.subprotocol)
            await ws.send("plain")
            self.assertEqual(await recv(ws), "plain")

    async def test_server_without_subprotocols_selects_none_of_the_offered_ones(self):
        async with ws_connect(server_port("echo"), subprotocols=["chat"]) as ws:
            self.assertIsNone(ws.subprotocol)


class AuthWithWebsocketsLibrary(SwirlTestCase):

    async def test_auth_server_rejects_missing_or_wrong_token_with_401(self):
        port = server_port("auth")
        for path in ["/", "/?token=wrong", "/?token=secretx", "/?tok=secret"]:
            with self.subTest(path=path):
                with self.assertRaises(InvalidStatusCode) as caught:
                    async with ws_connect(port, path):
                        pass
                self.assertEqual(caught.exception.status_code, 401)

    async def test_auth_server_greets_then_echoes_when_token_is_valid(self):
        async with ws_connect(server_port("auth"), "/?token=secret") as ws:
            self.assertEqual(await recv(ws), "hello, welcome")
            await ws.send("echo me")
            self.assertEqual(await recv(ws), "echo me")
            await ws.send(b"\x00\x01binary")
            self.assertEqual(await recv(ws), b"\x00\x01binary")

    async def test_auth_server_finds_token_among_other_query_parameters(self):
        async with ws_connect(server_port("auth"), "/?room=lobby&token=secret") as ws:
            self.assertEqual(await recv(ws), "hello, welcome")

    async def test_auth_server_honours_custom_token_flag(self):
        port = server_port("auth", "--token", "letmein")
        with self.assertRaises(InvalidStatusCode) as caught:
            async with ws_connect(port, "/?token=secret"):
                pass
        self.assertEqual(caught.exception.status_code, 401)
        async with ws_connect(port, "/?token=letmein") as ws:
            self.assertEqual(await recv(ws), "hello, welcome")


# --------------------------------------------------------------------------
# Raw handshake tests
# --------------------------------------------------------------------------


class RawHandshake(SwirlTestCase):

    async def test_upgrade_response_carries_the_rfc_accept_key(self):
        async with self.raw_websocket(server_port("echo")) as ws:
            self.assertIn("sec-websocket-accept", ws.headers)  # checked in raw_websocket

    async def test_version_8_is_rejected_with_426_and_version_13_header(self):
        port = server_port("echo")
        status, headers = await http_exchange(port, upgrade_request(port, version="8"))
        self.assertEqual(status, 426)
        self.assertEqual(headers.get("sec-websocket-version"), "13")

    async def test_plain_http_get_without_upgrade_is_rejected_with_400(self):
        port = server_port("echo")
        request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        status, _ = await http_exchange(port, request)
        self.assertEqual(status, 400)

    async def test_malformed_websocket_key_is_rejected_with_400(self):
        port = server_port("echo")
        status, _ = await http_exchange(port, upgrade_request(port, key="abc"))
        self.assertEqual(status, 400)

    async def test_upgrade_with_two_host_fields_is_rejected_with_400(self):
        port = server_port("echo")
        status, headers = await http_exchange(port, upgrade_request(port, extra_headers=["Host: other.example"]))
        self.assertEqual(status, 400)
        self.assertNotIn("sec-websocket-accept", headers)

    async def test_upgrade_with_two_websocket_keys_is_rejected_with_400(self):
        port = server_port("echo")
        key = new_key()
        for second in [key, new_key()]:
            with self.subTest(same=second == key):
                request = upgrade_request(port, key=key, extra_headers=[f"Sec-WebSocket-Key: {second}"])
                status, headers = await http_exchange(port, request)
                self.assertEqual(status, 400)
                self.assertNotIn("sec-websocket-accept", headers)

    async def test_upgrade_with_two_websocket_versions_is_rejected_with_400(self):
        port = server_port("echo")
        request = upgrade_request(port, extra_headers=["Sec-WebSocket-Version: 13"])
        status, headers = await http_exchange(port, request)
        self.assertEqual(status, 400)
        self.assertNotIn("sec-websocket-version", headers)

    async def test_bare_lf_upgrade_request_is_upgraded_promptly(self):
        port = server_port("echo")  # handshake timeout 10 s: an answer within 2 s means the request was parsed
        key = new_key()
        reader, writer = await open_tcp(port)
        try:
            writer.write(upgrade_request(port, key=key).replace(b"\r\n", b"\n"))
            await within(writer.drain())
            status, headers = await within(read_http_response(reader), 2, waiting_for="the answer to bare LFs")
            self.assertEqual(status, 101)
            self.assertEqual(headers.get("sec-websocket-accept"), accept_key(key))
            ws = RawWebSocket(self, reader, writer, headers)
            await ws.send(frame(OP_TEXT, b"line feeds"))
            await ws.expect_frame(OP_TEXT, b"line feeds")
        finally:
            await close_tcp(writer)

    async def test_upgrade_request_with_a_body_is_rejected_with_400_before_the_body_arrives(self):
        port = server_port("echo")
        reader, writer = await open_tcp(port)
        try:
            writer.write(upgrade_request(port, extra_headers=["Content-Length: 100"]))  # the body never comes
            await within(writer.drain())
            status, headers = await within(read_http_response(reader), 2, waiting_for="a 400 before the body")
            self.assertEqual(status, 400)
            self.assertNotIn("sec-websocket-accept", headers)
        finally:
            await close_tcp(writer)

    async def test_no_subprotocol_header_when_client_requests_none(self):
        for flags in [(), SubprotocolsWithWebsocketsLibrary.FLAGS]:
            with self.subTest(flags=flags):
                async with self.raw_websocket(server_port("echo", *flags)) as ws:
                    self.assertNotIn("sec-websocket-protocol", ws.headers)

    async def test_no_subprotocol_header_when_no_offered_subprotocol_is_supported(self):
        port = server_port("echo", *SubprotocolsWithWebsocketsLibrary.FLAGS)
        async with self.raw_websocket(port, extra_headers=["Sec-WebSocket-Protocol: mqtt, v2.stomp"]) as ws:
            self.assertNotIn("sec-websocket-protocol", ws.headers)

    async def test_auth_server_rejects_malformed_key_with_400_even_with_valid_token(self):
        port = server_port("auth")
        status, _ = await http_exchange(port, upgrade_request(port, "/?token=secret", key="abc"))
        self.assertEqual(status, 400)

    async def test_auth_server_accepts_raw_upgrade_with_valid_token_and_greets(self):
        async with self.raw_websocket(server_port("auth"), "/?token=secret") as ws:
            await ws.expect_frame(OP_TEXT, b"hello, welcome")

    async def test_client_stalling_mid_handshake_is_dropped_after_handshake_timeout(self):
        port = server_port("echo", "--handshake-timeout", "1")
        started = time.monotonic()
        reader, writer = await open_tcp(port)
        try:
            writer.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n".encode())
            await within(writer.drain())
            try:
                # Until EOF; an error response before it is fine.
                await within(reader.read(), 6, waiting_for="the server to drop a stalled handshake")
            except ConnectionResetError:
                pass
            elapsed = time.monotonic() - started
            self.assertGreaterEqual(elapsed, 0.8, "closed before the handshake timeout")
            self.assertLessEqual(elapsed, 3.5, "closed long after the handshake timeout")
        finally:
            await close_tcp(writer)


# --------------------------------------------------------------------------
# Raw frame-level tests
# --------------------------------------------------------------------------


class RawFrames(SwirlTestCase):

    async def test_raw_ping_is_answered_by_pong_with_identical_payload(self):
        async with self.raw_websocket(server_port("echo")) as ws:
            await ws.send(frame(OP_PING, b"\x00swirl\xff"))
            await ws.expect_frame(OP_PONG, b"\x00swirl\xff")

    async def test_ping_between_fragments_is_answered_and_message_still_reassembled(self):
        async with self.raw_websocket(server_port("echo")) as ws:
            await ws.send(frame(OP_TEXT, b"Hel", fin=False),
                          frame(OP_PING, b"mid"),
                          frame(OP_CONTINUATION, b"lo"))
            await ws.expect_frame(OP_PONG, b"mid")
            await ws.expect_frame(OP_TEXT, b"Hello")

    async def test_utf8_character_split_across_fragments_is_accepted(self):
        text = "κόσμε".encode()  # split inside the 3-byte "ό"
        async with self.raw_websocket(server_port("echo")) as ws:
            await ws.send(frame(OP_TEXT, text[:3], fin=False), frame(OP_CONTINUATION, text[3:]))
            await ws.expect_frame(OP_TEXT, text)

    async def test_client_close_is_echoed_and_tcp_closed(self):
        async with self.raw_websocket(server_port("echo")) as ws:
            await ws.send(frame(OP_CLOSE, close_payload(1000, b"done")))
            received = await ws.recv_frame()
            self.assertEqual(received.opcode, OP_CLOSE)
            self.assertEqual(received.payload[:2], close_payload(1000))
            await ws.expect_tcp_closed()

    async def test_unmasked_client_frame_is_closed_with_1002(self):
        await self.assert_violation_closes_with(1002, frame(OP_TEXT, b"unmasked", mask=False))

    async def test_frame_with_rsv1_set_is_closed_with_1002(self):
        await self.assert_violation_closes_with(1002, frame(OP_TEXT, b"compressed?", rsv=RSV1))

    async def test_reserved_opcodes_are_closed_with_1002(self):
        for opcode in [0x3, 0xB]:
            with self.subTest(opcode=hex(opcode)):
                await self.assert_violation_closes_with(1002, frame(opcode, b"reserved"))

    async def test_invalid_utf8_text_is_closed_with_1007(self):
        for payload in [INVALID_UTF8, b"\xff"]:
            with self.subTest(payload=payload.hex()):
                await self.assert_violation_closes_with(1007, frame(OP_TEXT, payload))

    async def test_invalid_utf8_in_second_fragment_is_closed_with_1007(self):
        await self.assert_violation_closes_with(
            1007,
            frame(OP_TEXT, INVALID_UTF8[:9], fin=False),  # "κόσμε", valid so far
            frame(OP_CONTINUATION, INVALID_UTF8[9:]))  # starts with a surrogate

    async def test_close_with_code_1005_is_closed_with_1002(self):
        await self.assert_violation_closes_with(1002, frame(OP_CLOSE, close_payload(1005)))

    async def test_close_with_code_999_is_closed_with_1002(self):
        await self.assert_violation_closes_with(1002, frame(OP_CLOSE, close_payload(999)))

    async def test_close_with_one_byte_payload_is_closed_with_1002(self):
        await self.assert_violation_closes_with(1002, frame(OP_CLOSE, b"\x03"))

    async def test_ping_with_126_byte_payload_is_closed_with_1002(self):
        await self.assert_violation_closes_with(1002, frame(OP_PING, b"p" * 126))

    async def test_continuation_without_started_message_is_closed_with_1002(self):
        await self.assert_violation_closes_with(1002, frame(OP_CONTINUATION, b"orphan"))

    async def test_fragmented_message_growing_past_max_message_is_closed_with_1009(self):
        await self.assert_violation_closes_with(
            1009,
            frame(OP_BINARY, b"a" * 700, fin=False),
            frame(OP_CONTINUATION, b"b" * 700),
            port=server_port("echo", "--max-message", "1024"))


# --------------------------------------------------------------------------
# Process lifecycle
# --------------------------------------------------------------------------


class ServerLifecycle(unittest.TestCase):

    def assert_exits_cleanly_on(self, kind, sig):
        server = ServerProcess(server_executable(kind))
        try:
            self.assertEqual(server.stop(sig), 0, f"{kind} server did not exit with status 0 on {sig.name}")
        finally:
            server.stop(signal.SIGKILL)

    def test_echo_server_exits_with_status_0_on_sigterm(self):
        self.assert_exits_cleanly_on("echo", signal.SIGTERM)

    def test_echo_server_exits_with_status_0_on_sigint(self):
        self.assert_exits_cleanly_on("echo", signal.SIGINT)

    def test_auth_server_exits_with_status_0_on_sigterm(self):
        self.assert_exits_cleanly_on("auth", signal.SIGTERM)


# --------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echo-server", required=True, help="path to the echo_server example")
    parser.add_argument("--auth-server", required=True, help="path to the auth_server example")
    harness.run(sys.modules[__name__], parser, SERVERS)


if __name__ == "__main__":
    main()
