#!/usr/bin/python3
"""Memory per idle compressed connection (permessage-deflate): echo_server in each --deflate mode, N python3-websockets
connections (default 1,000, at most 10,000) that each exchange one 4,000-byte text message and then stay idle; prints
the server's RSS growth per connection for each mode, and without --deflate. Loopback only; stops by itself.

    /usr/bin/python3 bench/deflate_memory.py build/examples/echo_server [N]
"""
import asyncio
import re
import resource
import subprocess
import sys
import time

import websockets

ECHO = sys.argv[1]
N = min(int(sys.argv[2]) if len(sys.argv) > 2 else 1000, 10000)
MODES = [
    ("off", []),
    ("shared", ["--deflate"]),
    ("dedicated 15 (256 KB + 32 KB)", ["--deflate=dedicated"]),
    ("dedicated 12 (32 KB + 4 KB)", ["--deflate=dedicated", "--deflate-window", "12"]),
    ("dedicated 9 (4 KB + 512 B)", ["--deflate=dedicated", "--deflate-window", "9"]),
]
MESSAGE = ("swirl deflate memory per idle connection " * 100)[:4000]


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def measure(flags):
    proc = subprocess.Popen([ECHO, "--host", "127.0.0.1", "--port", "0", "--max-connections", str(N + 100),
                             "--ping-interval", "0", *flags], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = b""
        deadline = time.monotonic() + 10
        while b"listening" not in line and time.monotonic() < deadline:
            line += proc.stdout.readline()
        port = int(re.search(rb"ws://127\.0\.0\.1:(\d+)", line).group(1))
        # Warm the server: one connection and message first, so the loop's shared codecs and buffers exist.
        async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None, ping_interval=None) as ws:
            await ws.send(MESSAGE)
            await ws.recv()
        await asyncio.sleep(0.3)
        before = rss(proc.pid)
        clients = []
        for i in range(N):
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None, ping_interval=None)
            await ws.send(MESSAGE)
            assert await ws.recv() == MESSAGE
            clients.append(ws)
        await asyncio.sleep(1.0)
        after = rss(proc.pid)
        compressed = clients[0].response_headers.get("Sec-WebSocket-Extensions", "")
        for ws in clients:
            await ws.close()
        return (after - before) / N, compressed
    finally:
        proc.terminate()
        proc.wait(10)


async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * N + 1000), hard))
    baseline = None
    for name, flags in MODES:
        per, ext = await measure(flags)
        if baseline is None:
            baseline = per
        print(f"{name:34} {per:10.0f} B/conn  (+{per - baseline:8.0f} over off)  [{ext}]", flush=True)


asyncio.run(main())
