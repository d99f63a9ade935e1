#!/usr/bin/python3
"""Integration tests: the chat_server example (rooms on topics, push to a user, /metrics, offload) driven by
python3-websockets clients.

Usage:
    /usr/bin/python3 chat_server_test.py --chat-server PATH [NAME_SUBSTRING...]

Most tests run the server with `--threads 2`, so that the clients of one room are spread over two event loops and
every room message has to cross from one loop to the other. The last line printed is `N passed, N failed`; the exit
status is non-zero if anything failed.
"""

import argparse
import asyncio
import contextlib
import re
import signal
import sys
import time
import urllib.error
import urllib.request

import websockets

import harness
from harness import IO_TIMEOUT, ServerProcess, within

ARGS = None  # parsed command line, set by harness.run()

SERVERS = harness.Servers()
tearDownModule = SERVERS.tear_down_module

SETTLE = 0.1  # seconds given to a message that should not come, before checking that it did not


def two_loop_port():
    """The shared server with two event loops."""
    return SERVERS.shared(ARGS.chat_server, "--threads", "2").port


class ChatClient:
    """One python3-websockets connection to the chat server, with its connection id (from `welcome ID`)."""

    def __init__(self, ws, client_id):
        self.ws = ws
        self.id = client_id

    @classmethod
    async def connect(cls, port):
        ws = await within(websockets.connect(f"ws://127.0.0.1:{port}/", open_timeout=IO_TIMEOUT,
                                             close_timeout=IO_TIMEOUT, ping_interval=None),
                          waiting_for="the WebSocket handshake")
        welcome = await within(ws.recv(), waiting_for="the welcome")
        match = re.fullmatch(r"welcome (\d+)", welcome)
        if not match:
            await ws.close()
            raise AssertionError(f"expected 'welcome ID', got {welcome!r}")
        return cls(ws, int(match.group(1)))

    async def send(self, text):
        await within(self.ws.send(text), waiting_for="a send")

    async def recv(self):
        return await within(self.ws.recv(), waiting_for=f"a message to client {self.id}")

    async def ask(self, text):
        await self.send(text)
        return await self.recv()

    async def rooms(self):
        """The room names `rooms` lists."""
        reply = await self.ask("rooms")
        if not reply.startswith("rooms"):
            raise AssertionError(f"expected 'rooms ...', got {reply!r}")
        return [name for name in reply[len("rooms"):].strip().split(",") if name]

    async def assert_nothing_pending(self):
        """Nothing arrived that the test did not read: after a pause, the next message is the answer to `rooms`."""
        await asyncio.sleep(SETTLE)
        await self.send("rooms")
        reply = await self.recv()
        if not reply.startswith("rooms"):
            raise AssertionError(f"client {self.id} got an unexpected message: {reply!r}")

    async def close(self):
        await within(self.ws.close(), waiting_for="the close handshake")


def fetch(port, path):
    """(status, content type, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=IO_TIMEOUT) as response:
            return response.status, response.headers.get("Content-Type"), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type"), error.read().decode()


async def metrics(port):
    status, content_type, body = await within(asyncio.to_thread(fetch, port, "/metrics"), waiting_for="/metrics")
    if status != 200:
        raise AssertionError(f"/metrics answered {status}: {body!r}")
    if content_type != "text/plain; version=0.0.4":
        raise AssertionError(f"/metrics Content-Type {content_type!r}")
    return body


def sample(text, name, labels):
    """The value of the Prometheus sample `name{labels}` in `text` (labels as written, e.g. 'loop="0"')."""
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\d+)$", text, re.MULTILINE)
    if not match:
        raise AssertionError(f"no sample {name}{{{labels}}} in /metrics:\n{text}")
    return int(match.group(1))


class ChatTestCase(harness.DeadlineTestCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.stack = contextlib.AsyncExitStack()
        await self.stack.__aenter__()

    async def asyncTearDown(self):
        await self.stack.aclose()

    async def connect(self, port, n=1):
        """`n` clients, closed at the end of the test (in any case)."""
        clients = []
        for _ in range(n):
            client = await ChatClient.connect(port)
            self.stack.push_async_callback(self._close_quietly, client)
            clients.append(client)
        return clients

    @staticmethod
    async def _close_quietly(client):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.ws.close(), IO_TIMEOUT)

    async def wait_until(self, condition, what, timeout=2.0):
        """Polls async `condition()` until true, failing after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not await condition():
            if time.monotonic() > deadline:
                self.fail(f"not within {timeout}s: {what}")
            await asyncio.sleep(0.02)


class Rooms(ChatTestCase):

    async def test_room_messages_reach_exactly_the_members_over_two_event_loops(self):
        server = SERVERS.start_own(ARGS.chat_server, "--threads", "2")
        a, b, c, d = await self.connect(server.port, 4)
        text = await metrics(server.port)
        on_loop = [sample(text, "swirl_connections", f'loop="{i}",status="open"') for i in (0, 1)]
        self.assertEqual(sum(on_loop), 4)
        self.assertTrue(all(on_loop), f"the clients are not spread over both event loops: {on_loop}")

        self.assertEqual(await a.ask("join red"), "joined red 1")
        self.assertEqual(await b.ask("join red"), "joined red 2")
        self.assertEqual(await a.recv(), f"* {b.id} joined red")
        self.assertEqual(await c.ask("join red"), "joined red 3")
        for member in (a, b):
            self.assertEqual(await member.recv(), f"* {c.id} joined red")
        self.assertEqual(await d.ask("join blue"), "joined blue 1")

        await a.send("say red hello,  room")  # the text as sent, spaces and all
        for member in (a, b, c):  # the sender too
            self.assertEqual(await member.recv(), f"{a.id}: hello,  room")
        await d.send("say blue only blue")
        self.assertEqual(await d.recv(), f"{d.id}: only blue")
        self.assertEqual(await d.ask("say red let me in"), "error not in red")

        for client in (a, b, c, d):  # no join notice to the one joining, nothing of red to d, nothing of blue to red
            await client.assert_nothing_pending()
        self.assertEqual(await d.rooms(), ["blue", "red"])

    async def test_joining_twice_counts_and_announces_once(self):
        a, b = await self.connect(two_loop_port(), 2)
        self.assertEqual(await a.ask("join twice"), "joined twice 1")
        self.assertEqual(await b.ask("join twice"), "joined twice 2")
        self.assertEqual(await a.recv(), f"* {b.id} joined twice")
        self.assertEqual(await b.ask("join twice"), "joined twice 2")
        await a.assert_nothing_pending()

    async def test_leave_stops_the_room_messages_and_tells_the_others(self):
        a, b, c = await self.connect(two_loop_port(), 3)
        self.assertEqual(await a.ask("join leaving"), "joined leaving 1")
        self.assertEqual(await b.ask("join leaving"), "joined leaving 2")
        self.assertEqual(await a.recv(), f"* {b.id} joined leaving")
        self.assertEqual(await c.ask("join leaving"), "joined leaving 3")
        for member in (a, b):
            self.assertEqual(await member.recv(), f"* {c.id} joined leaving")

        self.assertEqual(await b.ask("leave leaving"), "left leaving")
        for member in (a, c):
            self.assertEqual(await member.recv(), f"* {b.id} left leaving")
        await a.send("say leaving still here")
        for member in (a, c):
            self.assertEqual(await member.recv(), f"{a.id}: still here")
        await b.assert_nothing_pending()
        self.assertEqual(await b.ask("leave leaving"), "error not in leaving")
        self.assertEqual(await b.ask("say leaving hello?"), "error not in leaving")

    async def test_a_closed_client_leaves_its_rooms_and_an_empty_room_disappears(self):
        port = two_loop_port()
        a, b, watcher = await self.connect(port, 3)
        for room in ("gone-1", "gone-2"):
            self.assertEqual(await a.ask(f"join {room}"), f"joined {room} 1")
        self.assertEqual(await b.ask("join gone-1"), "joined gone-1 2")
        self.assertEqual(await a.recv(), f"* {b.id} joined gone-1")
        self.assertTrue({"gone-1", "gone-2"} <= set(await watcher.rooms()))

        await a.close()
        self.assertEqual(await b.recv(), f"* {a.id} left gone-1")
        await b.assert_nothing_pending()  # nothing from gone-2, which b is not in

        def gone(room):
            async def condition():
                return room not in await watcher.rooms()
            return condition
        await self.wait_until(gone("gone-2"), "gone-2 (now empty) left `rooms`")
        self.assertIn("gone-1", await watcher.rooms())  # b is still in it
        self.assertEqual(await b.ask("join gone-1"), "joined gone-1 1")

        await b.close()
        await self.wait_until(gone("gone-1"), "gone-1 (now empty) left `rooms`")


class DirectMessages(ChatTestCase):

    async def test_to_id_reaches_that_connection_only(self):
        a, b, c = await self.connect(two_loop_port(), 3)
        for sender, receiver in [(a, b), (b, a), (a, c), (c, a)]:  # consecutive ids: both directions across loops
            with self.subTest(sender=sender.id, receiver=receiver.id):
                self.assertEqual(await sender.ask(f"to {receiver.id} psst, {receiver.id}"), "sent 1")
                self.assertEqual(await receiver.recv(), f"{sender.id}: psst, {receiver.id}")
        for client in (a, b, c):
            await client.assert_nothing_pending()

    async def test_to_oneself_is_delivered_before_the_reply(self):
        (a,) = await self.connect(two_loop_port())
        await a.send(f"to {a.id} note to self")
        self.assertEqual(await a.recv(), f"{a.id}: note to self")
        self.assertEqual(await a.recv(), "sent 1")

    async def test_to_an_unknown_or_closed_id_sends_nothing(self):
        a, b = await self.connect(two_loop_port(), 2)
        self.assertEqual(await a.ask("to 999999999 anyone?"), "sent 0")
        self.assertEqual(await a.ask("to nobody anyone?"), "sent 0")
        await b.close()

        async def b_gone():
            return await a.ask(f"to {b.id} still there?") == "sent 0"
        await self.wait_until(b_gone, f"client {b.id} gone from user:{b.id}")


class Commands(ChatTestCase):

    async def test_unknown_or_incomplete_commands_get_the_usage(self):
        (a,) = await self.connect(two_loop_port())
        for command in ["", "hello", "join", "leave", "say", "to", "slow", "slow soon", "JOIN x"]:
            with self.subTest(command=command):
                self.assertTrue((await a.ask(command)).startswith("error commands: "))

    async def test_binary_messages_are_ignored(self):
        (a,) = await self.connect(two_loop_port())
        await a.send(b"join binary")
        await a.assert_nothing_pending()
        self.assertNotIn("binary", await a.rooms())


class Offload(ChatTestCase):

    async def test_slow_in_one_client_does_not_delay_another_on_the_same_event_loop(self):
        port = SERVERS.shared(ARGS.chat_server).port  # one event loop: both clients on it
        a, b = await self.connect(port, 2)
        started = time.monotonic()
        await a.send("slow 300")
        await a.send("rooms")  # a's messages stay in order: answered after the slow one
        await asyncio.sleep(0.05)  # the task is under way
        asked = time.monotonic()
        await b.rooms()
        self.assertLess(time.monotonic() - asked, 0.1, "another client waited for the offloaded task")
        self.assertEqual(await a.recv(), "slept 300")
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertTrue((await a.recv()).startswith("rooms"))

    async def test_slow_is_capped_at_2000_ms(self):
        (a,) = await self.connect(two_loop_port())
        started = time.monotonic()
        await a.send("slow 60000")
        self.assertEqual(await within(a.ws.recv(), 4, waiting_for="the capped sleep"), "slept 2000")
        self.assertLess(time.monotonic() - started, 3.5)


class Metrics(ChatTestCase):

    async def test_metrics_count_open_connections_and_messages(self):
        server = SERVERS.start_own(ARGS.chat_server)
        clients = await self.connect(server.port, 3)
        for client in clients:
            await client.rooms()
        self.assertEqual(await clients[0].ask("join metrics"), "joined metrics 1")
        text = await metrics(server.port)
        self.assertEqual(sample(text, "swirl_connections", 'loop="0",status="open"'), 3)
        self.assertEqual(sample(text, "swirl_messages_in_total", 'loop="0"'), 4)
        self.assertEqual(sample(text, "swirl_upgraded_total", 'loop="0"'), 3)
        self.assertEqual(sample(text, "swirl_subscriptions", 'loop="0"'), 4)  # user:ID each, and the room
        self.assertEqual(sample(text, "swirl_topics", 'loop="0"'), 4)
        self.assertIn("# TYPE swirl_messages_in_total counter", text)

        await clients[2].close()

        async def open_now():
            return sample(await metrics(server.port), "swirl_connections", 'loop="0",status="open"') == 2
        await self.wait_until(open_now, "swirl_connections open at 2 after one client closed")

    async def test_other_paths_are_404(self):
        port = two_loop_port()
        for path in ["/", "/metrics/", "/metric", "/favicon.ico"]:
            with self.subTest(path=path):
                status, _, _ = await within(asyncio.to_thread(fetch, port, path))
                self.assertEqual(status, 404)
        self.assertIn('swirl_connections{loop="1",status="open"}', await metrics(port))  # two loops, two labels


class Lifecycle(ChatTestCase):

    async def test_exits_with_status_0_on_sigterm_with_clients_in_rooms(self):
        server = ServerProcess(ARGS.chat_server, ["--threads", "2"])
        try:
            a, b = await self.connect(server.port, 2)
            self.assertEqual(await a.ask("join closing"), "joined closing 1")
            self.assertEqual(await b.ask("join closing"), "joined closing 2")
            self.assertEqual(await within(asyncio.to_thread(server.stop, signal.SIGTERM)), 0)
        finally:
            server.stop(signal.SIGKILL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chat-server", required=True, help="path to the chat_server example")
    harness.run(sys.modules[__name__], parser, SERVERS)


if __name__ == "__main__":
    main()
