#!/usr/bin/env python3
"""The open-file limit against max_connections, with the real echo server under a chosen RLIMIT_NOFILE.

    /usr/bin/python3 tests/integration/fd_limit_test.py --echo-server build/examples/echo_server

Once, with Debian's soft limit of 1,024 descriptors and the default max_connections of 10,000, clients past the limit
waited in the backlog with no answer while the log filled with "Too many open files" many times a second.
"""
import argparse
import asyncio
import re
import resource
import sys

import harness
from harness import DeadlineTestCase, within

ARGS = None
servers = harness.Servers()
UPGRADE = (b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def nofile(soft, hard):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no 'Max open files' line")


class DescriptorLimit(DeadlineTestCase):
    async def upgrade(self, port):
        """Opens a connection and sends an upgrade; returns (status, writer) once the status line arrives."""
        reader, writer = await within(asyncio.open_connection("127.0.0.1", port), waiting_for="connect")
        writer.write(UPGRADE)
        line = await within(reader.readline(), waiting_for="a status line")
        status = int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else None
        return status, writer

    async def test_a_hard_limit_below_max_connections_warns_once_and_answers_503_past_it(self):
        server = servers.start_own(ARGS.echo_server, preexec_fn=nofile(128, 128))
        warnings = re.findall(r"max_connections 10000 cannot be reached.*connections beyond (\d+) get 503",
                              server.stderr_text())
        self.assertEqual(len(warnings), 1, server.stderr_text())
        admitted = int(warnings[0])
        self.assertTrue(0 < admitted < 128, admitted)
        writers, statuses = [], []
        try:
            for _ in range(admitted + 40):  # every client gets an answer: 101 up to the limit, 503 after it
                status, writer = await self.upgrade(server.port)
                writers.append(writer)
                statuses.append(status)
        finally:
            for writer in writers:
                writer.close()
        self.assertEqual(statuses.count(101), admitted)
        self.assertEqual(statuses.count(503), 40)
        await asyncio.sleep(0.2)
        log = server.stderr_text()
        self.assertEqual(log.count("cannot be reached"), 1)
        self.assertLessEqual(log.count("connection limit"), 1, log)  # throttled: not a line per refused client
        self.assertEqual(log.count("Too many open files"), 0, log)
        self.assertTrue(server.is_running())

    async def test_a_low_soft_limit_is_raised_so_that_max_connections_fits(self):
        server = servers.start_own(ARGS.echo_server, "--max-connections", "2000", preexec_fn=nofile(256, 8192))
        self.assertGreaterEqual(soft_nofile(server.process.pid), 2000)
        self.assertNotIn("cannot be reached", server.stderr_text())
        status, writer = await self.upgrade(server.port)
        writer.close()
        self.assertEqual(status, 101)


def tearDownModule():
    servers.tear_down_module()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--echo-server", required=True)
    harness.run(sys.modules[__name__], parser, servers)
