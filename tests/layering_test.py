#!/usr/bin/env python3
"""The layers' arrows point down: each public header compiles alone, and only with what its layer may use.

    layering_test.py --include DIR [--skip HEADER ...] -- COMPILER ARGS...

Every header under include/swirl/{protocol,server,dispatch,client}/ (detail/ included) is compiled on its own with
-fsyntax-only. A "poison" directory searched before everything else shadows each header the layer must not reach
with one that stops the compile with #error and names the rule:

    protocol/  no Asio, no fmt, no threads or mutexes, no sockets, nothing of server/, dispatch/, client/
               (zlib is allowed: the permessage-deflate codec is computation, not I/O)
    server/    nothing of dispatch/ or client/
    client/    nothing of server/ or dispatch/
    dispatch/  nothing of client/

Prints one PASS/FAIL line per header and ends with "N passed, N failed".
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SYSTEM_BANS = {
    "protocol": ["asio.hpp", "asio/ts/net.hpp", "fmt/core.h", "fmt/format.h", "thread", "mutex", "shared_mutex",
                 "condition_variable", "future", "sys/socket.h", "netinet/in.h", "openssl/ssl.h",
                 "swirl/detail/asio.hpp"],
}
LAYER_BANS = {
    "protocol": ["server", "dispatch", "client"],
    "server": ["dispatch", "client"],
    "client": ["server", "dispatch"],
    "dispatch": ["client"],
}


def make_poison(root, layer, swirl_dir):
    for name in SYSTEM_BANS.get(layer, []):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'#error "swirl/{layer}/ must not include <{name}>"\n')
    for banned in LAYER_BANS[layer]:
        for header in (swirl_dir / banned).rglob("*.hpp"):
            rel = header.relative_to(swirl_dir.parent)
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f'#error "swirl/{layer}/ must not include <{rel}>: arrows point down"\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--include", required=True, help="the project's include/ directory")
    ap.add_argument("--skip", action="append", default=[], help="a header (relative to include/) not to compile")
    ap.add_argument("compiler", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    compiler = [c for c in a.compiler if c != "--"]
    include = Path(a.include).resolve()
    swirl_dir = include / "swirl"

    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for layer in LAYER_BANS:
            poison = Path(tmp) / layer
            make_poison(poison, layer, swirl_dir)
            for header in sorted((swirl_dir / layer).rglob("*.hpp")):
                rel = str(header.relative_to(include))
                if rel in a.skip:
                    continue
                source = Path(tmp) / (rel.replace("/", "_") + ".cpp")
                source.write_text(f"#include <{rel}>\n")
                jobs.append((rel, compiler + ["-fsyntax-only", "-I", str(poison), "-I", str(include), str(source)]))

        def run(job):
            rel, cmd = job
            r = subprocess.run(cmd, capture_output=True, text=True)
            return rel, r.returncode, r.stderr

        passed = failed = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for rel, rc, err in pool.map(run, jobs):
                if rc == 0:
                    passed += 1
                    print(f"  {rel:<48} PASS")
                else:
                    failed += 1
                    print(f"  {rel:<48} FAIL")
                    print("\n".join("      " + line for line in err.splitlines()[:15]))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
