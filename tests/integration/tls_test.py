#!/usr/bin/env python3
"""wss end to end: the example servers with a TLS listener beside the plain one, driven by python3-websockets and
raw ssl sockets. Certificates are made at test time by the openssl program (a throwaway CA, a server certificate
for 127.0.0.1 and localhost, a client certificate); no key is ever committed.

    /usr/bin/python3 tests/integration/tls_test.py --echo-server build/examples/echo_server \
        --auth-server build/examples/auth_server [--dispatch-server build/examples/dispatch_server]
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

import websockets
from websockets.exceptions import InvalidMessage, InvalidStatusCode

import harness
from harness import DeadlineTestCase, within

ARGS = None
servers = harness.Servers()
CERTS = None  # the Certificates of this run


class Certificates:
    """A CA, server certificates signed by it (the current one, and one to renew to) and a client certificate."""

    def __init__(self, directory):
        self.dir = directory
        self.openssl = shutil.which("openssl") or "openssl"
        self.ca_key, self.ca = self.path("ca.key"), self.path("ca.pem")
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                  "-subj", "/CN=swirl test CA", "-keyout", self.ca_key, "-out", self.ca)
        self.server_key, self.server = self.issue("server", "/CN=swirl test server",
                                                  "subjectAltName=IP:127.0.0.1,DNS:localhost")
        self.client_key, self.client = self.issue("client", "/CN=alice/O=swirl tests", "extendedKeyUsage=clientAuth")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _run(self, *args):
        subprocess.run([self.openssl, *args], check=True, capture_output=True, timeout=30)

    def issue(self, name, subject, extension):
        key, csr, cert = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".pem")
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write(extension + "\n")
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subject,
                  "-keyout", key, "-out", csr)
        self._run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial", "-days", "2",
                  "-extfile", ext, "-out", cert)
        return key, cert

    def client_context(self, with_certificate=False):
        ctx = ssl.create_default_context(cafile=self.ca)
        if with_certificate:
            ctx.load_cert_chain(self.client, self.client_key)
        return ctx


def tls_flags(cert=None, key=None, *extra):
    return ("--tls-cert", cert or CERTS.server, "--tls-key", key or CERTS.server_key, "--tls-port", "0", *extra)


def wss(port, path="/"):
    return f"wss://localhost:{port}{path}"


def connect(port, path="/", context=None, **kwargs):
    """A wss connection to localhost (`async with connect(...) as ws`, or `await connect(...)`), bounded by IO_TIMEOUT."""
    return websockets.connect(wss(port, path), ssl=context or CERTS.client_context(), max_size=None,
                              open_timeout=harness.IO_TIMEOUT, **kwargs)


async def raw_tls(port, request, server_hostname="localhost"):
    """Sends raw bytes over TLS; returns everything the server sends until it closes."""
    reader, writer = await within(asyncio.open_connection("127.0.0.1", port, ssl=CERTS.client_context(),
                                                          server_hostname=server_hostname), waiting_for="TLS")
    writer.write(request)
    data = await within(reader.read(65536), waiting_for="a response")
    writer.close()
    return data


UPGRADE = (b"GET /?token=secret HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: %s\r\n\r\n")


class Wss(DeadlineTestCase):
    def echo(self):
        return servers.shared(ARGS.echo_server, *tls_flags())

    async def test_text_and_binary_echo_up_to_16_mib_both_ways(self):
        server = self.echo()
        async with connect(server.tls_port) as ws:
            for size in (0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20):
                text = ("wss " * (size // 4 + 1))[:size]
                await ws.send(text)
                self.assertEqual(await within(ws.recv(), 20), text, size)
                data = os.urandom(size)
                await ws.send(data)
                self.assertEqual(await within(ws.recv(), 20), data, size)

    async def test_fragmented_message_ping_and_client_close_with_code(self):
        server = self.echo()
        async with connect(server.tls_port) as ws:
            await ws.send(part for part in ["frag", "ment", "ed"])  # one message in three frames
            self.assertEqual(await within(ws.recv()), "fragmented")
            pong = await ws.ping(b"over tls")
            await within(pong, waiting_for="the pong")
            await ws.close(4001, "bye")
            self.assertEqual(ws.close_code, 4001)

    async def test_rejections_over_tls_get_426_400_and_401(self):
        server = servers.shared(ARGS.auth_server, *tls_flags())
        self.assertTrue((await raw_tls(server.tls_port, UPGRADE % b"8")).startswith(b"HTTP/1.1 426"))
        bad_key = UPGRADE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short") % b"13"
        self.assertTrue((await raw_tls(server.tls_port, bad_key)).startswith(b"HTTP/1.1 400"))
        with self.assertRaises(InvalidStatusCode) as rejected:
            await connect(server.tls_port, "/?token=wrong")
        self.assertEqual(rejected.exception.status_code, 401)
        async with connect(server.tls_port, "/?token=secret") as ws:
            greeting = await within(ws.recv())
            self.assertTrue(greeting.startswith("hello, welcome (TLSv1."), greeting)
            self.assertIn("SNI 'localhost'", greeting)  # the handshake hook and on_open see the server name

    async def test_client_certificate_required_lets_in_a_verified_client_and_refuses_one_without(self):
        server = servers.start_own(ARGS.auth_server, *tls_flags(None, None, "--tls-ca", CERTS.ca, "--tls-verify",
                                                               "required"))
        async with connect(server.tls_port, context=CERTS.client_context(with_certificate=True)) as ws:
            greeting = await within(ws.recv())  # no token: the certificate is the credential
            self.assertIn("client 'O=swirl tests,CN=alice'", greeting)
        with self.assertRaises(InvalidMessage) as refused:  # TLS 1.3: the refusal arrives at the first read
            async with connect(server.tls_port) as ws:
                await within(ws.recv())
        self.assertIsInstance(refused.exception.__cause__, ssl.SSLError)
        self.assertIn("CERTIFICATE_REQUIRED", str(refused.exception.__cause__))

    async def test_plain_http_on_the_tls_port_is_dropped_and_the_server_keeps_serving(self):
        server = self.echo()
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.tls_port)
        writer.write(UPGRADE % b"13")
        await within(reader.read(), 3, waiting_for="the server to drop plain HTTP on its TLS port")
        self.assertLess(time.monotonic() - started, 3)
        writer.close()
        async with connect(server.tls_port) as ws:
            await ws.send("still serving")
            self.assertEqual(await within(ws.recv()), "still serving")

    async def test_a_stalled_tls_handshake_is_dropped_within_the_handshake_timeout(self):
        server = servers.start_own(ARGS.echo_server, "--handshake-timeout", "1", *tls_flags())
        for send in (b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):  # nothing; half a ClientHello
            started = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.tls_port)
            writer.write(send)
            await within(reader.read(), 4, waiting_for="the stalled handshake to be dropped")
            self.assertLess(time.monotonic() - started, 3)
            self.assertGreater(time.monotonic() - started, 0.8)
            writer.close()

    async def test_old_protocol_versions_are_refused(self):
        server = self.echo()
        ctx = CERTS.client_context()
        with warnings.catch_warnings():  # that TLS 1.1 is deprecated is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            await within(asyncio.open_connection("127.0.0.1", server.tls_port, ssl=ctx, server_hostname="localhost"))

    async def test_reload_tls_on_sighup_serves_the_renewed_certificate_to_new_clients(self):
        workdir = tempfile.mkdtemp(dir=CERTS.dir)
        cert, key = os.path.join(workdir, "live.pem"), os.path.join(workdir, "live.key")
        shutil.copy(CERTS.server, cert)
        shutil.copy(CERTS.server_key, key)
        server = servers.start_own(ARGS.echo_server, *tls_flags(cert, key))

        async def serial():
            reader, writer = await asyncio.open_connection("127.0.0.1", server.tls_port, ssl=CERTS.client_context(),
                                                           server_hostname="localhost")
            number = writer.get_extra_info("peercert")["serialNumber"]
            writer.close()
            return number

        old_client = await connect(server.tls_port)
        before = await serial()
        renewed_key, renewed = CERTS.issue("renewed", "/CN=swirl test server renewed",
                                           "subjectAltName=IP:127.0.0.1,DNS:localhost")
        shutil.copy(renewed, cert)
        shutil.copy(renewed_key, key)
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + harness.IO_TIMEOUT
        while await serial() == before:
            self.assertLess(time.monotonic(), deadline, "the renewed certificate never appeared")
            await asyncio.sleep(0.05)
        await old_client.send("old connection still works")
        self.assertEqual(await within(old_client.recv()), "old connection still works")
        await old_client.close()


class WsAndWssOnOneServer(DeadlineTestCase):
    async def test_pushes_cross_between_the_plain_and_the_tls_listener(self):
        if not ARGS.dispatch_server:
            self.skipTest("no dispatch_server (built without JSON)")
        server = servers.shared(ARGS.dispatch_server, *tls_flags())
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as plain, connect(server.tls_port) as tls:
            for sender, receiver, text in ((plain, tls, "from ws"), (tls, plain, "from wss")):
                await sender.send(json.dumps({"action": "broadcast", "content": text}))
                for ws in (plain, tls):  # the broadcast reaches both, whichever listener they came through
                    reply = json.loads(await within(ws.recv()))
                    self.assertEqual(reply["content"], text)


def setUpModule():
    global CERTS
    CERTS = Certificates(tempfile.mkdtemp(prefix="swirl-tls-"))


def tearDownModule():
    try:
        servers.tear_down_module()
    finally:
        shutil.rmtree(CERTS.dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--echo-server", required=True)
    parser.add_argument("--auth-server", required=True)
    parser.add_argument("--dispatch-server")
    harness.run(sys.modules[__name__], parser, servers)
