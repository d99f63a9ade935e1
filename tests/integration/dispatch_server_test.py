#!/usr/bin/python3
"""Integration tests: the dispatch_server example (JSON routing to an EasySwoole-style controller) driven by python3-websockets.

The client is python3-websockets 10.4 (Debian's, hence /usr/bin/python3). The
server routes JSON text messages `{"class":..., "action":..., "content":...}`
to its `Index` controller and echoes binary messages unchanged.

Usage:
    /usr/bin/python3 dispatch_server_test.py --dispatch-server PATH [NAME_SUBSTRING...]

The server is started with `--host 127.0.0.1 --port 0`; the real port is read
from its `listening on ws://127.0.0.1:PORT` line. Its stderr is captured (and
copied to ours) so that logged errors can be checked. The last line printed is
`N passed, N failed`; the exit status is non-zero if anything failed.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time

import websockets
from websockets.exceptions import ConnectionClosed

import harness
from harness import IO_TIMEOUT, within

INDEX_ACTIONS = ["hello", "echo", "broadcast", "whoami", "add", "motd", "close", "fail"]
ADMIN_TOKEN = "letmein"  # the example's demo token
MAX_DEPTH = 64  # JsonParser::max_depth

ARGS = None  # parsed command line, set by harness.run()


# --------------------------------------------------------------------------
# Server process
# --------------------------------------------------------------------------


SERVERS = harness.Servers()
tearDownModule = SERVERS.tear_down_module


def shared_server(*flags):
    """The running dispatch server with `flags`, started on first use."""
    return SERVERS.shared(ARGS.dispatch_server, *flags)


def server_port(*flags):
    return shared_server(*flags).port


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def ws_connect(port, **kwargs):
    """python3-websockets client with bounded waits and no keepalive pings."""
    options = dict(open_timeout=IO_TIMEOUT, close_timeout=IO_TIMEOUT,
                   ping_interval=None, max_size=None)
    options.update(kwargs)
    return websockets.connect(f"ws://127.0.0.1:{port}/", **options)


async def recv(ws):
    return await within(ws.recv(), waiting_for="a message")


def request(action=None, content=None, cls=None, **extra):
    """A JSON request; `None` leaves a field out."""
    doc = {}
    if cls is not None:
        doc["class"] = cls
    if action is not None:
        doc["action"] = action
    if content is not None:
        doc["content"] = content
    doc.update(extra)
    return json.dumps(doc)


def ok(action, content, cls="Index"):
    return {"class": cls, "action": action, "content": content}


def failure(action, error, cls="Index"):
    return {"class": cls, "action": action, "error": error}


def nested(depth, inner="1"):
    return "[" * depth + inner + "]" * depth


class DispatchTestCase(harness.DeadlineTestCase):
    """Tests with a deadline each (see harness), plus JSON helpers."""

    async def recv_json(self, ws):
        message = await recv(ws)
        self.assertIsInstance(message, str, f"expected a text reply, got {message!r:.200}")
        try:
            return json.loads(message)
        except ValueError:
            self.fail(f"reply is not JSON: {message!r:.200}")

    async def call(self, ws, message):
        """Send one text message; return the parsed JSON reply."""
        await ws.send(message)
        return await self.recv_json(ws)

    async def assert_reply(self, ws, message, expected):
        self.assertEqual(await self.call(ws, message), expected, f"reply to {message!r:.200}")

    async def whoami(self, ws):
        reply = await self.call(ws, request("whoami"))
        self.assertEqual(set(reply), {"class", "action", "content"}, reply)
        self.assertEqual((reply["class"], reply["action"]), ("Index", "whoami"))
        self.assertIs(type(reply["content"]), int, f"connection id is not an integer: {reply}")
        return reply["content"]

    async def assert_still_open(self, ws):
        await self.assert_reply(ws, request("hello", {"name": "again"}), ok("hello", "hello, again"))

    async def assert_closed_by_server(self, ws, code, reason):
        """The server's next frame is a close with `code` and `reason` (no message before it)."""
        with self.assertRaises(ConnectionClosed) as caught:
            message = await recv(ws)
            self.fail(f"expected a close {code} {reason!r}, got message {message!r:.200}")
        self.assertIsNotNone(caught.exception.rcvd, "server sent no close frame")
        self.assertEqual((caught.exception.rcvd.code, caught.exception.rcvd.reason), (code, reason))
        await within(ws.wait_closed(), waiting_for="the closing handshake")
        self.assertEqual((ws.close_code, ws.close_reason), (code, reason))

    def assert_same_payload(self, received, expected):
        # Avoid assertEqual's diff, which is unusable (and slow) on megabyte payloads.
        self.assertIs(type(received), type(expected),
                      f"expected a {type(expected).__name__} message, got {type(received).__name__}")
        self.assertEqual(len(received), len(expected), "reply has the wrong length")
        self.assertTrue(received == expected, "reply differs from what was expected")


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------


class Routing(DispatchTestCase):

    async def test_hello_with_name_greets_by_name(self):
        async with ws_connect(server_port()) as ws:
            await self.assert_reply(ws, '{"action":"hello","content":{"name":"Ada"}}', ok("hello", "hello, Ada"))
            await self.assert_reply(ws, '{"class":"Index","action":"hello","content":{"name":"Grace"}}',
                                    ok("hello", "hello, Grace"))

    async def test_hello_with_scalar_content_is_wrapped_and_greets_world(self):
        # A non-object content becomes {"content": x}: there is no "name", so the default applies.
        async with ws_connect(server_port()) as ws:
            await self.assert_reply(ws, '{"action":"hello","content":"Bob"}', ok("hello", "hello, world"))
            await self.assert_reply(ws, '{"action":"hello","content":42}', ok("hello", "hello, world"))
            await self.assert_reply(ws, '{"action":"hello"}', ok("hello", "hello, world"))
            await self.assert_still_open(ws)

    async def test_scalar_content_is_wrapped_and_echo_returns_it_as_it_came(self):
        async with ws_connect(server_port()) as ws:
            for content in ["Bob", 5, -2.5, True, None, [1, "two", [3]], {"x": 1, "y": [1, 2]}]:
                with self.subTest(content=content):
                    await self.assert_reply(ws, json.dumps({"action": "echo", "content": content}),
                                            ok("echo", content))

    async def test_empty_object_runs_index_of_index_listing_actions(self):
        async with ws_connect(server_port()) as ws:
            for message in ["{}", '{"class":"Index"}', '{"action":"index"}', '{"class":"Index","action":"index"}']:
                with self.subTest(message=message):
                    reply = await self.call(ws, message)
                    self.assertEqual(set(reply), {"class", "action", "content"}, reply)
                    self.assertEqual((reply["class"], reply["action"]), ("Index", "index"))
                    self.assertIsInstance(reply["content"], str)
                    for action in INDEX_ACTIONS:
                        self.assertIn(action, reply["content"])

    async def test_whoami_returns_the_numeric_connection_id(self):
        async with ws_connect(server_port()) as ws:
            first = await self.whoami(ws)
            self.assertEqual(await self.whoami(ws), first, "id changed within one connection")

    async def test_distinct_connections_have_distinct_ids(self):
        port = server_port()
        async with ws_connect(port) as a, ws_connect(port) as b:
            id_a, id_b = await self.whoami(a), await self.whoami(b)
            self.assertNotEqual(id_a, id_b)
            self.assertEqual(await self.whoami(a), id_a)
            self.assertEqual(await self.whoami(b), id_b)
        async with ws_connect(port) as c:
            self.assertNotIn(await self.whoami(c), {id_a, id_b}, "a later connection reused an id")

    async def test_unknown_action_gets_error_reply_and_connection_stays_open(self):
        async with ws_connect(server_port()) as ws:
            await self.assert_reply(ws, '{"action":"nope"}', failure("nope", "unknown action: Index.nope"))
            await self.assert_reply(ws, '{"class":"Index","action":"nope"}', failure("nope", "unknown action: Index.nope"))
            await self.assert_still_open(ws)

    async def test_unknown_controller_gets_error_reply_and_connection_stays_open(self):
        async with ws_connect(server_port()) as ws:
            await self.assert_reply(ws, '{"class":"X"}', failure("index", "unknown controller: X", cls="X"))
            await self.assert_reply(ws, '{"class":"X","action":"hello"}',
                                    failure("hello", "unknown controller: X", cls="X"))
            await self.assert_still_open(ws)

    async def test_add_sums_numbers(self):
        async with ws_connect(server_port()) as ws:
            reply = await self.call(ws, '{"action":"add","content":{"a":1,"b":2}}')
            self.assertEqual(reply, ok("add", 3))
            self.assertIs(type(reply["content"]), int, "integer sum came back as a float")
            await self.assert_reply(ws, '{"action":"add","content":{"a":-5,"b":2}}', ok("add", -3))
            await self.assert_reply(ws, '{"action":"add","content":{"a":1.5,"b":2}}', ok("add", 3.5))

    async def test_add_refuses_integer_overflow_with_an_error_reply(self):
        # Once a signed overflow that UBSan aborted the server on: the example is copied, so it must be exact.
        async with ws_connect(server_port()) as ws:
            for a, b in [(9223372036854775807, 1), (-9223372036854775808, -1), (18446744073709551615, 0),
                         (9223372036854775808, -1)]:
                with self.subTest(a=a, b=b):
                    await self.assert_reply(ws, request("add", {"a": a, "b": b}),
                                            failure("add", "add overflows a 64-bit integer"))
            await self.assert_reply(ws, request("add", {"a": 9223372036854775806, "b": 1}),
                                    ok("add", 9223372036854775807))
            await self.assert_reply(ws, request("add", {"a": -9223372036854775807, "b": -1}),
                                    ok("add", -9223372036854775808))
            await self.assert_still_open(ws)

    async def test_add_with_non_numbers_gets_error_reply_from_on_exception(self):
        async with ws_connect(server_port()) as ws:
            for content in [{"a": "1", "b": 2}, {"a": 1}, {"a": True, "b": 1}, {"a": None, "b": None}, None, "12"]:
                with self.subTest(content=content):
                    await self.assert_reply(ws, request("add", content),
                                            failure("add", "add needs numbers a and b"))
            await self.assert_still_open(ws)

    async def test_argument_of_the_wrong_json_type_gets_error_reply(self):
        async with ws_connect(server_port()) as ws:
            reply = await self.call(ws, '{"action":"hello","content":{"name":5}}')
            self.assertEqual(set(reply), {"class", "action", "error"})
            self.assertTrue(reply["error"].startswith("bad arguments: "), reply)
            await self.assert_still_open(ws)

    async def test_echo_returns_string_content_exactly(self):
        async with ws_connect(server_port()) as ws:
            await ws.send('{"action":"echo","content":"aaa"}')
            self.assertEqual(await recv(ws), '{"class":"Index","action":"echo","content":"aaa"}')
            await self.assert_reply(ws, request("echo", "κόσμε ✓ \"quoted\" \\ \n\t"),
                                    ok("echo", "κόσμε ✓ \"quoted\" \\ \n\t"))

    async def test_pipelined_messages_are_answered_in_order(self):
        messages, expected = [], []
        for i in range(40):
            kind = i % 5
            if kind == 0:
                messages.append(request("hello", {"name": f"n{i}"}))
                expected.append(ok("hello", f"hello, n{i}"))
            elif kind == 1:
                messages.append(request("add", {"a": i, "b": 1000}))
                expected.append(ok("add", i + 1000))
            elif kind == 2:
                messages.append(f"not json {i}")
                expected.append({"error": "malformed JSON"})
            elif kind == 3:
                messages.append(request(f"nope{i}"))
                expected.append(failure(f"nope{i}", f"unknown action: Index.nope{i}"))
            else:
                messages.append(request("echo", [i, str(i)]))
                expected.append(ok("echo", [i, str(i)]))
        async with ws_connect(server_port()) as ws:
            for message in messages:  # all sent before any reply is read
                await within(ws.send(message))
            replies = [await self.recv_json(ws) for _ in messages]
            self.assertEqual(replies, expected)
            await self.assert_still_open(ws)

    async def test_one_mebibyte_json_message_round_trips_through_echo(self):
        content = ("swirl dispatches 0123456789 " * (1 << 20))[: 1 << 20]
        async with ws_connect(server_port()) as ws:
            await ws.send(request("echo", content))
            reply = await recv(ws)
            self.assert_same_payload(reply, '{"class":"Index","action":"echo","content":"' + content + '"}')
            big_object = {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(20000)]}
            await ws.send(request("echo", big_object))
            self.assertTrue(json.loads(await recv(ws)) == ok("echo", big_object), "large object differs")
            await self.assert_still_open(ws)


# --------------------------------------------------------------------------
# Malformed requests
# --------------------------------------------------------------------------


class MalformedRequests(DispatchTestCase):

    async def assert_refused(self, message, error):
        async with ws_connect(server_port()) as ws:
            await self.assert_reply(ws, message, {"error": error})
            await self.assert_still_open(ws)

    async def test_malformed_json_gets_error_reply_and_connection_stays_open(self):
        for message in ["not json", "", '{"action":"hello"', "{'action':'hello'}"]:
            with self.subTest(message=message):
                await self.assert_refused(message, "malformed JSON")

    async def test_json_that_is_not_an_object_gets_error_reply(self):
        for message in ["[1]", "1", '"hello"', "null", "true"]:
            with self.subTest(message=message):
                await self.assert_refused(message, "expected a JSON object")

    async def test_non_string_action_gets_error_reply(self):
        for message in ['{"action":1}', '{"action":null}', '{"action":["hello"]}']:
            with self.subTest(message=message):
                await self.assert_refused(message, '"action" must be a string')

    async def test_non_string_class_gets_error_reply(self):
        for message in ['{"class":1}', '{"class":{"name":"Index"}}']:
            with self.subTest(message=message):
                await self.assert_refused(message, '"class" must be a string')

    async def test_json_nested_deeper_than_64_gets_error_reply(self):
        error = f"JSON nested deeper than {MAX_DEPTH} levels"
        for message in [nested(MAX_DEPTH + 1),
                        '{"action":"echo","content":' + nested(MAX_DEPTH) + "}",
                        '{"a":' * 1000 + "1" + "}" * 1000]:
            with self.subTest(message=message[:40]):
                await self.assert_refused(message, error)
        self.assertIn(f"nested deeper than {MAX_DEPTH}", error)

    async def test_json_nested_exactly_64_deep_is_dispatched(self):
        # The request object is one level, its content 63 more.
        async with ws_connect(server_port()) as ws:
            await self.assert_reply(ws, '{"action":"echo","content":' + nested(MAX_DEPTH - 1) + "}",
                                    ok("echo", json.loads(nested(MAX_DEPTH - 1))))
            # Brackets inside strings do not count as nesting.
            await self.assert_reply(ws, request("echo", "[{" * 200), ok("echo", "[{" * 200))


# --------------------------------------------------------------------------
# Services and hooks: controllers made from the application's services, Admin's before_action veto
# --------------------------------------------------------------------------


class ServicesAndHooks(DispatchTestCase):

    async def motd(self, ws):
        reply = await self.call(ws, request("motd"))
        self.assertEqual((reply.get("class"), reply.get("action")), ("Index", "motd"), reply)
        self.assertIsInstance(reply.get("content"), str, reply)
        return reply["content"]

    async def test_admin_actions_without_the_token_are_vetoed_by_before_action(self):
        async with ws_connect(server_port()) as ws:
            before = await self.motd(ws)
            denied = "admin actions need the admin token"
            for content in [None, {"text": "hacked"}, {"token": "wrong", "text": "hacked"},
                            {"token": 1, "text": "hacked"}, ADMIN_TOKEN, [ADMIN_TOKEN]]:
                with self.subTest(content=content):
                    await self.assert_reply(ws, request("motd", content, cls="Admin"),
                                            failure("motd", denied, cls="Admin"))
            # The veto comes before "action not found" too.
            await self.assert_reply(ws, request("nope", cls="Admin"), failure("nope", denied, cls="Admin"))
            await self.assert_reply(ws, request("nope", {"token": ADMIN_TOKEN}, cls="Admin"),
                                    failure("nope", "unknown action: Admin.nope", cls="Admin"))
            self.assertEqual(await self.motd(ws), before, "a vetoed action ran")
            await self.assert_still_open(ws)

    async def test_motd_set_by_admin_is_shared_by_every_connection_through_the_services(self):
        port = server_port()
        async with ws_connect(port) as a, ws_connect(port) as b:
            before = await self.motd(b)
            try:
                await self.assert_reply(a, request("motd", {"token": ADMIN_TOKEN, "text": "maintenance at noon"},
                                                   cls="Admin"), ok("motd", "motd set", cls="Admin"))
                self.assertEqual(await self.motd(b), "maintenance at noon")
                self.assertEqual(await self.motd(a), "maintenance at noon")
                await self.assert_reply(a, request("motd", {"token": ADMIN_TOKEN, "text": 5}, cls="Admin"),
                                        failure("motd", "motd needs a text", cls="Admin"))
                self.assertEqual(await self.motd(b), "maintenance at noon")
            finally:
                await self.assert_reply(a, request("motd", {"token": ADMIN_TOKEN, "text": before}, cls="Admin"),
                                        ok("motd", "motd set", cls="Admin"))
            self.assertEqual(await self.motd(b), before)


# --------------------------------------------------------------------------
# Binary, broadcast, close and failures
# --------------------------------------------------------------------------


class BinaryAndConnectionEffects(DispatchTestCase):

    async def test_binary_frames_are_echoed_unchanged(self):
        async with ws_connect(server_port()) as ws:
            for message in [b"", b"\x00\x01\xff", b'{"action":"whoami"}', b"not json", os.urandom(70000),
                            os.urandom(1 << 20)]:
                with self.subTest(size=len(message)):
                    await ws.send(message)
                    self.assert_same_payload(await recv(ws), message)
            await self.assert_still_open(ws)

    async def test_broadcast_reaches_every_connection_including_the_sender(self):
        port = server_port()
        async with ws_connect(port) as a, ws_connect(port) as b, ws_connect(port) as c:
            for ws in (a, b, c):  # a round trip each, so all three are surely established
                await self.whoami(ws)
            await b.send('{"action":"broadcast","content":"hi all"}')
            for name, ws in (("a", a), ("b", b), ("c", c)):
                with self.subTest(connection=name):
                    self.assertEqual(await recv(ws), '{"class":"Index","action":"broadcast","content":"hi all"}')
            # Nothing else was queued for the sender: the next message is the answer to its next request.
            await self.whoami(b)
            await self.assert_reply(a, request("broadcast", {"x": [1, 2]}), ok("broadcast", {"x": [1, 2]}))
            for ws in (b, c):
                self.assertEqual(await self.recv_json(ws), ok("broadcast", {"x": [1, 2]}))

    async def test_close_action_replies_then_closes_with_4000_bye(self):
        async with ws_connect(server_port()) as ws:
            await self.assert_reply(ws, '{"action":"close"}', ok("close", "bye"))
            await self.assert_closed_by_server(ws, 4000, "bye")

    async def test_fail_action_closes_with_1011_and_server_keeps_serving(self):
        server = shared_server()
        async with ws_connect(server.port) as ws:
            connection_id = await self.whoami(ws)
            await ws.send('{"action":"fail"}')
            await self.assert_closed_by_server(ws, 1011, "internal error")
        self.assertTrue(server.is_running(), "server exited after an action threw")
        async with ws_connect(server.port) as ws:
            await self.assert_reply(ws, '{"action":"hello","content":{"name":"Ada"}}', ok("hello", "hello, Ada"))
            self.assertNotEqual(await self.whoami(ws), connection_id)
        line = re.compile(rf"^.*error.*connection {connection_id}: Index\.fail threw: fail was called$",
                          re.MULTILINE)
        deadline = time.monotonic() + IO_TIMEOUT
        while not line.search(server.stderr_text()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.assertRegex(server.stderr_text(), line, "the exception was not logged on stderr")


class Lifecycle(DispatchTestCase):

    async def test_sigterm_closes_open_connections_and_exits_with_status_0(self):
        server = SERVERS.start_own(ARGS.dispatch_server)
        async with ws_connect(server.port) as ws:
            await self.whoami(ws)
            server.process.send_signal(signal.SIGTERM)
            await self.assert_closed_by_server(ws, 1001, "server shutting down")
        status = await asyncio.get_running_loop().run_in_executor(None, server.stop, signal.SIGTERM, IO_TIMEOUT)
        self.assertEqual(status, 0, "dispatch server did not exit with status 0 on SIGTERM")


# --------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dispatch-server", required=True, help="path to the dispatch_server example")
    harness.run(sys.modules[__name__], parser, SERVERS)


if __name__ == "__main__":
    main()
