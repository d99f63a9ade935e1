#!/usr/bin/python3
"""Integration tests: permessage-deflate (RFC 7692) between swirl's example servers and real clients.

Clients:
  * python3-websockets 10.4 (Debian's), which offers permessage-deflate by default, with each of its parameters;
  * raw asyncio TCP streams with hand-built (zlib) frames, to see RSV1 on the server's frames and to send what a
    well-behaved library never sends (RSV1 where it is not allowed, corrupt data, decompression bombs).

Usage:
    /usr/bin/python3 deflate_test.py --echo-server PATH [--dispatch-server PATH] [NAME_SUBSTRING...]

The echo server runs with `--deflate` (shared compressor and decompressor), `--deflate=dedicated` (both per
connection, keeping their context) and `--deflate=dedicated --deflate-window 9` (both with 512-byte windows), and
without the flag (the extension is declined). The last line printed is
`N passed, N failed`; the exit status is non-zero if anything failed.
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import os
import random
import struct
import sys
import zlib

import websockets
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

import harness
from harness import IO_TIMEOUT, frame, within

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
RSV1 = 0b100  # the 3-bit RSV field as frame() takes it
TAIL = b"\x00\x00\xff\xff"
MIB = 1024 * 1024

MODES = {
    "shared": ("--deflate",),
    "dedicated": ("--deflate=dedicated",),
    "dedicated-9": ("--deflate=dedicated", "--deflate-window", "9"),
}

# 16 MiB messages compressed both ways, in three modes: more time than the other files need.
harness.TEST_TIMEOUT = 60
harness.FILE_TIMEOUT = 170

ARGS = None
SERVERS = harness.Servers()
tearDownModule = SERVERS.tear_down_module


def echo_port(*flags):
    return SERVERS.shared(ARGS.echo_server, *flags).port


def text_of_length(n, seed=0):
    """ASCII text of n bytes that compresses about as well as prose."""
    words = ["swirl", "deflate", "window", "takeover", "context", "message", "frame", "echo", "zlib", str(seed)]
    out, i = [], seed
    size = 0
    while size < n:
        w = words[(i * 7 + i // 3) % len(words)] + " "
        out.append(w)
        size += len(w)
        i += 1
    return "".join(out)[:n]


# Letters without repetition inside: compresses to about 60% alone, to a few bytes as a repeat.
_rng = random.Random(7)
RANDOM_TEXT = bytes(_rng.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(2000))


def client_factory(**kwargs):
    return ClientPerMessageDeflateFactory(**kwargs)


def ws_connect(port, path="/", **kwargs):
    options = dict(open_timeout=IO_TIMEOUT, close_timeout=IO_TIMEOUT, ping_interval=None, max_size=None)
    options.update(kwargs)
    return websockets.connect(f"ws://127.0.0.1:{port}{path}", **options)


async def recv(ws, timeout=IO_TIMEOUT):
    return await within(ws.recv(), timeout, waiting_for="a message")


def compress(data, wbits=15):
    """One message as RFC 7692 §7.2.1 has it: raw deflate, sync flush, the tail removed (a fresh stream each)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate(data):
    d = zlib.decompressobj(-15)
    return d.decompress(data + TAIL)


def bomb(inflated_size):
    """A compressed message that inflates to `inflated_size` zero bytes, built without holding them."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MIB)
    parts, left = [], inflated_size
    while left:
        n = min(left, MIB)
        parts.append(c.compress(chunk[:n]))
        left -= n
    parts.append(c.flush(zlib.Z_SYNC_FLUSH))
    out = b"".join(parts)
    return out[:-4]


class RawWebSocket:
    def __init__(self, test, reader, writer, headers):
        self.test, self.reader, self.writer, self.headers = test, reader, writer, headers

    async def send(self, *frames):
        self.writer.write(b"".join(frames))
        with contextlib.suppress(ConnectionError):
            await within(self.writer.drain())

    async def recv_frame(self):
        b0, b1 = await within(self.reader.readexactly(2), waiting_for="a frame")
        self.test.assertFalse(b1 & 0x80, "server frames must not be masked")
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await within(self.reader.readexactly(2)))
        elif length == 127:
            (length,) = struct.unpack("!Q", await within(self.reader.readexactly(8)))
        payload = await within(self.reader.readexactly(length))
        return bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0x0F, payload

    async def expect_close(self, code):
        fin, rsv, opcode, payload = await self.recv_frame()
        self.test.assertEqual((opcode, rsv), (OP_CLOSE, 0), f"expected a close frame with {code}")
        self.test.assertEqual(struct.unpack("!H", payload[:2])[0], code, payload[2:].decode(errors="replace"))
        await self.send(frame(OP_CLOSE, payload[:2]))
        try:
            rest = await within(self.reader.read(), 5, waiting_for="the server to close TCP")
        except ConnectionResetError:
            return
        self.test.assertEqual(rest, b"", "server sent bytes after its close frame")


class DeflateTestCase(harness.DeadlineTestCase):

    def assert_same_payload(self, received, expected):
        self.assertIs(type(received), type(expected))
        self.assertEqual(len(received), len(expected), "echoed message has the wrong length")
        self.assertTrue(received == expected, "echoed message differs from what was sent")

    @contextlib.asynccontextmanager
    async def raw_websocket(self, port, extensions="permessage-deflate; client_max_window_bits"):
        key = base64.b64encode(os.urandom(16)).decode()
        reader, writer = await within(asyncio.open_connection("127.0.0.1", port))
        try:
            request = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
            if extensions is not None:
                request += f"Sec-WebSocket-Extensions: {extensions}\r\n"
            writer.write((request + "\r\n").encode())
            await within(writer.drain())
            head = await within(reader.readuntil(b"\r\n\r\n"))
            lines = head.decode("latin-1").split("\r\n")
            self.assertIn(" 101 ", lines[0] + " ")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.assertEqual(headers.get("sec-websocket-accept"), expected)
            yield RawWebSocket(self, reader, writer, headers)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class Negotiation(DeflateTestCase):

    async def test_without_the_flag_the_extension_is_declined(self):
        async with ws_connect(echo_port()) as ws:
            self.assertIsNone(ws.response_headers.get("Sec-WebSocket-Extensions"))
            await ws.send(text_of_length(5000))
            self.assertEqual(await recv(ws), text_of_length(5000))

    async def test_shared_mode_answers_no_context_takeover_both_ways(self):
        async with ws_connect(echo_port(*MODES["shared"])) as ws:
            self.assertEqual(ws.response_headers.get("Sec-WebSocket-Extensions"),
                             "permessage-deflate; server_no_context_takeover; client_no_context_takeover")

    async def test_dedicated_mode_keeps_the_context_both_ways(self):
        async with ws_connect(echo_port(*MODES["dedicated"])) as ws:
            self.assertEqual(ws.response_headers.get("Sec-WebSocket-Extensions"), "permessage-deflate")

    async def test_dedicated_window_is_announced_both_ways(self):
        async with ws_connect(echo_port(*MODES["dedicated-9"])) as ws:
            self.assertEqual(ws.response_headers.get("Sec-WebSocket-Extensions"),
                             "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9")

    async def test_an_offer_without_client_max_window_bits_is_still_accepted(self):
        async with self.raw_websocket(echo_port(*MODES["shared"]), "permessage-deflate") as ws:
            self.assertEqual(ws.headers.get("sec-websocket-extensions"),
                             "permessage-deflate; server_no_context_takeover; client_no_context_takeover")

    async def test_an_unknown_extension_alone_is_declined(self):
        async with self.raw_websocket(echo_port(*MODES["shared"]), "x-webkit-deflate-frame") as ws:
            self.assertNotIn("sec-websocket-extensions", ws.headers)


class EchoWithWebsocketsLibrary(DeflateTestCase):
    """python3-websockets, compression on by default, against each mode: text and binary up to 16 MiB."""

    SIZES = [0, 1, 1023, 1024, 5000, 65536, MIB, 16 * MIB]

    async def echo_every_size(self, mode, **factory):
        extensions = {"compression": None, "extensions": [client_factory(**factory)]} if factory else {}
        async with ws_connect(echo_port(*MODES[mode]), **extensions) as ws:
            self.assertIn("permessage-deflate", ws.response_headers.get("Sec-WebSocket-Extensions", ""))
            for size in self.SIZES:
                with self.subTest(size=size):
                    text = text_of_length(size, size)
                    await ws.send(text)
                    self.assert_same_payload(await recv(ws, 30), text)
                    binary = os.urandom(size // 2) + text_of_length(size - size // 2).encode()
                    await ws.send(binary)
                    self.assert_same_payload(await recv(ws, 30), binary)

    async def test_shared_echo_up_to_16_mib(self):
        await self.echo_every_size("shared")

    async def test_dedicated_echo_up_to_16_mib(self):
        await self.echo_every_size("dedicated")

    async def test_dedicated_window_9_echo_up_to_16_mib(self):
        await self.echo_every_size("dedicated-9")

    async def test_client_parameters_each_negotiate_and_echo(self):
        for mode in MODES:
            for factory in ({"server_no_context_takeover": True}, {"client_no_context_takeover": True},
                            {"server_max_window_bits": 10}, {"client_max_window_bits": 9},
                            {"server_max_window_bits": 9, "client_max_window_bits": 9}):
                with self.subTest(mode=mode, **factory):
                    async with ws_connect(echo_port(*MODES[mode]), compression=None,
                                          extensions=[client_factory(**factory)]) as ws:
                        answer = ws.response_headers.get("Sec-WebSocket-Extensions", "")
                        if "server_max_window_bits" in factory:
                            self.assertIn(f"server_max_window_bits={min(factory['server_max_window_bits'], 9 if mode == 'dedicated-9' else 15)}", answer)
                        for n in (10, 3000, 3000, 70000):
                            message = text_of_length(n, n)
                            await ws.send(message)
                            self.assertEqual(await recv(ws), message)

    async def test_many_messages_keep_the_context_in_order(self):
        for mode in MODES:
            async with ws_connect(echo_port(*MODES[mode])) as ws:
                messages = [text_of_length(1500 + i * 37, i % 5) for i in range(200)]
                for m in messages:
                    await ws.send(m)
                for m in messages:
                    self.assertEqual(await recv(ws), m)


class RawCompressedFrames(DeflateTestCase):
    """Hand-built frames: what the server sends, and what it refuses."""

    async def test_server_compresses_messages_from_the_threshold_with_rsv1_on_the_only_frame(self):
        async with self.raw_websocket(echo_port(*MODES["shared"])) as ws:
            big = text_of_length(4096).encode()
            await ws.send(frame(OP_TEXT, compress(big), rsv=RSV1))
            fin, rsv, opcode, payload = await ws.recv_frame()
            self.assertEqual((fin, rsv, opcode), (True, RSV1, OP_TEXT))
            self.assertLess(len(payload), len(big))
            self.assertEqual(inflate(payload), big)
            # Below the 1 KiB threshold: sent as it is, though it came compressed.
            small = b"short message"
            await ws.send(frame(OP_TEXT, compress(small), rsv=RSV1))
            self.assertEqual(await ws.recv_frame(), (True, 0, OP_TEXT, small))
            # Uncompressed frames are still fine, and a ping's pong never has RSV1.
            await ws.send(frame(OP_PING, b"p"))
            self.assertEqual(await ws.recv_frame(), (True, 0, OP_PONG, b"p"))

    async def test_a_fragmented_compressed_message_is_reassembled_and_inflated(self):
        async with self.raw_websocket(echo_port(*MODES["dedicated"])) as ws:
            message = text_of_length(10000).encode()
            data = compress(message)
            third = len(data) // 3
            await ws.send(frame(OP_TEXT, data[:third], fin=False, rsv=RSV1), frame(OP_PING, b"mid"),
                          frame(OP_CONTINUATION, data[third:2 * third], fin=False),
                          frame(OP_CONTINUATION, data[2 * third:], fin=True))
            self.assertEqual(await ws.recv_frame(), (True, 0, OP_PONG, b"mid"))
            fin, rsv, opcode, payload = await ws.recv_frame()
            self.assertEqual((fin, rsv, opcode), (True, RSV1, OP_TEXT))
            self.assertEqual(inflate(payload), message)

    async def test_context_takeover_both_ways_with_dedicated_codecs(self):
        async with self.raw_websocket(echo_port(*MODES["dedicated"])) as ws:
            self.assertEqual(ws.headers.get("sec-websocket-extensions"), "permessage-deflate")
            sender = zlib.compressobj(6, zlib.DEFLATED, -15)
            receiver = zlib.decompressobj(-15)
            sizes = []
            for i in range(3):
                message = RANDOM_TEXT  # the same each time: later ones refer back
                data = sender.compress(message) + sender.flush(zlib.Z_SYNC_FLUSH)
                await ws.send(frame(OP_BINARY, data[:-4], rsv=RSV1))
                fin, rsv, opcode, payload = await ws.recv_frame()
                self.assertEqual((fin, rsv, opcode), (True, RSV1, OP_BINARY))
                self.assertEqual(receiver.decompress(payload + TAIL), message)
                sizes.append(len(payload))
            self.assertLess(sizes[1] * 4, sizes[0], "the server's second message did not use its context")

    async def test_rsv1_on_a_continuation_frame_is_1002(self):
        async with self.raw_websocket(echo_port(*MODES["shared"])) as ws:
            data = compress(b"hello hello hello")
            await ws.send(frame(OP_TEXT, data[:3], fin=False, rsv=RSV1), frame(OP_CONTINUATION, data[3:], rsv=RSV1))
            await ws.expect_close(1002)

    async def test_rsv1_on_a_control_frame_is_1002(self):
        async with self.raw_websocket(echo_port(*MODES["shared"])) as ws:
            await ws.send(frame(OP_PING, b"", rsv=RSV1))
            await ws.expect_close(1002)

    async def test_rsv1_without_the_extension_is_1002(self):
        async with self.raw_websocket(echo_port(*MODES["shared"]), extensions=None) as ws:
            self.assertNotIn("sec-websocket-extensions", ws.headers)
            await ws.send(frame(OP_TEXT, compress(b"hello"), rsv=RSV1))
            await ws.expect_close(1002)

    async def test_rsv2_is_1002_even_with_the_extension(self):
        async with self.raw_websocket(echo_port(*MODES["shared"])) as ws:
            await ws.send(frame(OP_TEXT, b"hello", rsv=0b010))
            await ws.expect_close(1002)

    async def test_data_that_does_not_inflate_is_1007(self):
        async with self.raw_websocket(echo_port(*MODES["shared"])) as ws:
            await ws.send(frame(OP_BINARY, b"\xff\xff\xff\xff\xff", rsv=RSV1))
            await ws.expect_close(1007)

    async def test_compressed_text_that_is_not_utf8_is_1007(self):
        async with self.raw_websocket(echo_port(*MODES["dedicated"])) as ws:
            await ws.send(frame(OP_TEXT, compress(b"caf\xc3 not utf-8"), rsv=RSV1))
            await ws.expect_close(1007)

    async def test_a_decompression_bomb_is_1009_and_the_server_stays_small(self):
        port = echo_port(*MODES["shared"], "--max-message", str(MIB))
        server = SERVERS.shared(ARGS.echo_server, *MODES["shared"], "--max-message", str(MIB))
        data = bomb(512 * MIB)  # 512 MiB of zeros in about 500 KiB
        self.assertLess(len(data), MIB)
        async with self.raw_websocket(port) as ws:
            await ws.send(frame(OP_BINARY, data, rsv=RSV1))
            await ws.expect_close(1009)
        with open(f"/proc/{server.process.pid}/status") as status:
            rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        self.assertLess(rss_kib, 64 * 1024, "the server's peak RSS suggests the bomb was inflated past the limit")

    async def test_a_message_inflating_to_just_over_the_limit_is_1009_and_exactly_the_limit_is_echoed(self):
        port = echo_port(*MODES["dedicated"], "--max-message", "100000")
        async with self.raw_websocket(port) as ws:
            exact = text_of_length(100000).encode()
            await ws.send(frame(OP_TEXT, compress(exact), rsv=RSV1))
            fin, rsv, opcode, payload = await ws.recv_frame()
            self.assertEqual((rsv, inflate(payload)), (RSV1, exact))
        async with self.raw_websocket(port) as ws:
            await ws.send(frame(OP_TEXT, compress(text_of_length(100001).encode()), rsv=RSV1))
            await ws.expect_close(1009)

    async def test_websockets_client_gets_1009_for_a_compressed_message_over_the_limit(self):
        async with ws_connect(echo_port(*MODES["shared"], "--max-message", "100000")) as ws:
            with self.assertRaises(ConnectionClosed) as caught:
                await ws.send(text_of_length(100001))
                await recv(ws)
            self.assertEqual(caught.exception.rcvd.code, 1009)


class DispatchServer(DeflateTestCase):

    async def test_dispatch_server_negotiates_with_the_flag(self):
        if not ARGS.dispatch_server:
            self.skipTest("no --dispatch-server")
        port = SERVERS.shared(ARGS.dispatch_server, "--deflate").port
        async with ws_connect(port) as ws:
            self.assertIn("permessage-deflate", ws.response_headers.get("Sec-WebSocket-Extensions", ""))
            blob = os.urandom(3000)
            await ws.send(blob)
            self.assertEqual(await recv(ws), blob)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echo-server", required=True, help="path to the echo_server example")
    parser.add_argument("--dispatch-server", help="path to the dispatch_server example")
    harness.run(sys.modules[__name__], parser, SERVERS)


if __name__ == "__main__":
    main()
