#!/usr/bin/python3
"""One packaging consumer's echo server against python3-websockets: start it on port 0, echo a text and a binary
message, stop it with SIGTERM and expect exit status 0.

Usage: /usr/bin/python3 roundtrip.py [--features tls=1,deflate=1] ECHO_EXECUTABLE
--features: the `features: ...` line the server must print (the defines its build system gave it).
Prints what it saw, then `  NAME   PASS` or `FAIL`; exits 1 on failure. Every wait is bounded.
"""

import argparse
import asyncio
import os
import re
import select
import signal
import subprocess
import sys
import time

import websockets

IO_TIMEOUT = 10  # seconds for any one wait: the server's start, a reply, its exit


def read_banner(process):
    """The server's `features:` and `listening on ws://127.0.0.1:PORT` lines, within IO_TIMEOUT."""
    deadline = time.monotonic() + IO_TIMEOUT
    output = b""
    fd = process.stdout.fileno()
    while not re.search(rb"listening on ws://127\.0\.0\.1:(\d+)\n", output):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"no 'listening on' line within {IO_TIMEOUT}s: {output!r}")
        if select.select([fd], [], [], remaining)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"exited with {process.wait(IO_TIMEOUT)} before listening: {output!r}")
            output += chunk
    features = re.search(rb"features: (\S+) (\S+)\n", output)
    port = int(re.search(rb"listening on ws://127\.0\.0\.1:(\d+)\n", output).group(1))
    return (b",".join(features.groups()).decode() if features else ""), port


async def echo(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/", open_timeout=IO_TIMEOUT, close_timeout=IO_TIMEOUT) as ws:
        for message in ["hello from a packaging consumer", bytes(range(256)) * 300]:
            await ws.send(message)
            reply = await asyncio.wait_for(ws.recv(), IO_TIMEOUT)
            if reply != message:
                raise RuntimeError(f"echoed {reply[:40]!r}..., sent {message[:40]!r}...")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("executable")
    args = parser.parse_args()
    name = args.name or args.executable
    # Killed by `timeout` (SIGTERM): still stop the server in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    process = subprocess.Popen([args.executable, "0"], stdout=subprocess.PIPE)
    try:
        features, port = read_banner(process)
        if args.features is not None and features != args.features:
            raise RuntimeError(f"built with {features}, expected {args.features}")
        asyncio.run(asyncio.wait_for(echo(port), 3 * IO_TIMEOUT))
        process.send_signal(signal.SIGTERM)
        status = process.wait(IO_TIMEOUT)
        if status != 0:
            raise RuntimeError(f"exit status {status} after SIGTERM")
    except Exception as e:  # noqa: BLE001 - any failure is this consumer's
        print(f"   {name}: {e}")
        print(f"  {name:<40} FAIL")
        return 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    print(f"   {name}: built with {features}, echoed text and binary, exited 0 on SIGTERM")
    print(f"  {name:<40} PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
