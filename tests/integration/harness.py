"""What the python integration tests share: example servers as subprocesses, bounded waits, and the runner.

Imported by the test files beside it (run as `/usr/bin/python3 tests/integration/NAME_test.py ...`).
"""

import asyncio
import contextlib
import functools
import os
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import unittest

IO_TIMEOUT = 5  # seconds allowed for any single network wait (servers are local)
TEST_TIMEOUT = 20  # seconds allowed for one whole test case
FILE_TIMEOUT = 55  # seconds allowed for the whole file (watchdog)


class ServerProcess:
    """An example server running as a subprocess on an ephemeral port, its stderr captured (and copied to ours)."""

    LISTENING = re.compile(rb"listening on ws://127\.0\.0\.1:(\d+)\r?\n")
    LISTENING_TLS = re.compile(rb"listening on wss://127\.0\.0\.1:(\d+)\r?\n")

    def __init__(self, executable, flags=(), preexec_fn=None):
        self.command = [executable, "--host", "127.0.0.1", "--port", "0", *flags]
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        preexec_fn=preexec_fn)
        self._stderr = bytearray()
        self._stderr_lock = threading.Lock()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.tls_port = None  # the wss listener's port, when the flags ask for one
        self.port = self._read_port(wants_tls="--tls-cert" in flags)
        threading.Thread(target=self._drain_stdout, daemon=True).start()

    def _read_port(self, wants_tls=False):
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + IO_TIMEOUT
        output = b""
        while True:
            match = self.LISTENING.search(output)
            tls_match = self.LISTENING_TLS.search(output)
            if match and (tls_match or not wants_tls):
                self.tls_port = int(tls_match.group(1)) if tls_match else None
                return int(match.group(1))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise RuntimeError(
                    f"{self.command} did not print 'listening on ws://127.0.0.1:PORT' "
                    f"within {IO_TIMEOUT}s; stdout so far: {output!r}")
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:
                    status = self.stop()
                    raise RuntimeError(
                        f"{self.command} exited (status {status}) before listening; "
                        f"stdout: {output!r}; stderr: {self.stderr_text()!r}")
                output += chunk

    def _drain_stdout(self):
        # Keep reading so a chatty server never blocks on a full pipe.
        with contextlib.suppress(OSError, ValueError):
            while os.read(self.process.stdout.fileno(), 65536):
                pass

    def _drain_stderr(self):
        # Captured for assertions and copied to our stderr so diagnostics still reach the test log.
        with contextlib.suppress(OSError, ValueError):
            while True:
                chunk = os.read(self.process.stderr.fileno(), 65536)
                if not chunk:
                    return
                with self._stderr_lock:
                    self._stderr += chunk
                with contextlib.suppress(Exception):
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.flush()

    def stderr_text(self):
        with self._stderr_lock:
            return self._stderr.decode("utf-8", "replace")

    def is_running(self):
        return self.process.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5):
        """Signal the server and wait; returns its exit status (None if it had to be killed)."""
        if self.is_running():
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


class Servers:
    """The example servers of one test file: shared ones, started on first use per (executable, flags) and kept for
    later tests, and ones a single test started for itself. `stop_all` ends every one of them."""

    def __init__(self):
        self._shared = {}  # (executable, flags) -> ServerProcess
        self._start_failures = {}  # (executable, flags) -> error, so a broken server fails fast after the first try
        self._own = []

    def shared(self, executable, *flags):
        key = (executable, flags)
        name = f"{os.path.basename(executable)} {list(flags)}"
        if key in self._start_failures:
            raise RuntimeError(f"{name} failed to start earlier: {self._start_failures[key]}")
        server = self._shared.get(key)
        if server is not None and not server.is_running():
            del self._shared[key]
            raise RuntimeError(f"{name} died during an earlier test (exit status {server.process.returncode})")
        if server is None:
            try:
                server = self._shared[key] = ServerProcess(executable, flags)
            except Exception as error:
                self._start_failures[key] = error
                raise
        return server

    def start_own(self, executable, *flags, preexec_fn=None):
        """A server for one test alone; still killed at the end whatever happens. `preexec_fn` runs in the child
        before it starts (e.g. to set its resource limits)."""
        server = ServerProcess(executable, flags, preexec_fn)
        self._own.append(server)
        return server

    def live(self):
        return [*self._shared.values(), *self._own]

    def stop_all(self):
        """Stops every server; returns the shared ones that had exited before."""
        died = [f"{os.path.basename(executable)} {list(flags)} (status {server.process.returncode})"
                for (executable, flags), server in self._shared.items() if not server.is_running()]
        for server in self.live():
            server.stop()
        self._shared.clear()
        self._own.clear()
        return died

    def tear_down_module(self):
        """For a test file's `tearDownModule`: a shared server that died early is an error of the file."""
        died = self.stop_all()
        if died:
            raise RuntimeError("servers exited before the end of the tests: " + ", ".join(died))


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True):
    """Encode one WebSocket frame (client frames are masked unless mask=False)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, mask_bit | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not mask:
        return header + payload
    key = os.urandom(4)
    repeated = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return header + key + masked


class NetworkTimeout(AssertionError):
    """A network wait ran out of time: reported as a test failure, not a hang."""


async def within(awaitable, timeout=IO_TIMEOUT, waiting_for="the server"):
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise NetworkTimeout(f"timed out after {timeout}s waiting for {waiting_for}") from None


def with_deadline(method):
    """Fails an async test method that runs longer than TEST_TIMEOUT instead of letting it hang."""
    @functools.wraps(method)
    async def wrapper(self):
        try:
            await asyncio.wait_for(method(self), TEST_TIMEOUT)
        except asyncio.TimeoutError:
            self.fail(f"test did not finish within {TEST_TIMEOUT}s")
    return wrapper


class DeadlineTestCase(unittest.IsolatedAsyncioTestCase):
    """Gives every async test_* method of a subclass the TEST_TIMEOUT deadline."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, method in list(vars(cls).items()):
            if name.startswith("test_") and asyncio.iscoroutinefunction(method):
                setattr(cls, name, with_deadline(method))

    async def asyncSetUp(self):
        # IsolatedAsyncioTestCase runs in debug mode; large messages are not "slow callbacks".
        asyncio.get_running_loop().slow_callback_duration = 60


def _selected_tests(suite, name_filters):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _selected_tests(item, name_filters)
        elif not name_filters or any(f in item.id() for f in name_filters):
            yield item


def run(module, parser, servers):
    """Parses the command line into `module.ARGS`, runs the module's tests (optionally only those whose id contains
    one of the positional names) under a FILE_TIMEOUT watchdog, prints `N passed, N failed` and exits."""
    parser.add_argument("names", nargs="*", help="only run tests whose id contains one of these")
    module.ARGS = parser.parse_args()

    def watchdog(signum, frame_):
        print(f"\nwatchdog: test file exceeded {FILE_TIMEOUT}s, killing servers", file=sys.stderr)
        for server in servers.live():
            with contextlib.suppress(Exception):
                server.process.kill()
        print("0 passed, 1 failed", flush=True)
        os._exit(1)

    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(FILE_TIMEOUT)

    loaded = unittest.defaultTestLoader.loadTestsFromModule(module)
    suite = unittest.TestSuite(_selected_tests(loaded, module.ARGS.names))
    try:
        result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    finally:
        servers.stop_all()
        signal.alarm(0)

    problems = result.failures + result.errors + [(t, None) for t in result.unexpectedSuccesses]
    failed_cases = {getattr(t, "test_case", t).id() for t, _ in problems if isinstance(t, unittest.TestCase)}
    fixture_errors = [t for t, _ in problems if not isinstance(t, unittest.TestCase)]
    passed = result.testsRun - len(result.skipped) - len(failed_cases)
    failed = len(failed_cases) + len(fixture_errors)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(0 if failed == 0 and passed > 0 else 1)
