#!/usr/bin/env python3
"""Compiles a file that must not compile and checks that the compiler's complaint stays readable: it fails,
names what is wrong (the unmet concept and requirement; the controller and action), fits on one screen and,
with --max-errors, nothing cascades after the first error.

usage: compile_fail_test.py --expect TEXT [--expect TEXT ...] --max-lines N [--max-errors N] -- COMPILER ARGS... FILE
"""
import argparse
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect", action="append", default=[])
    parser.add_argument("--max-lines", type=int, default=40)
    parser.add_argument("--max-errors", type=int, default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    result = subprocess.run(command + ["-fsyntax-only"], capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    failures = []
    if result.returncode == 0:
        failures.append("the file compiled, but it must not")
    for text in args.expect:
        if text not in output:
            failures.append(f"the diagnostic does not mention {text!r}")
    if len(lines) > args.max_lines:
        failures.append(f"the diagnostic has {len(lines)} lines (limit {args.max_lines})")
    errors = [line for line in lines if "error:" in line]
    if args.max_errors is not None and len(errors) > args.max_errors:
        failures.append(f"the diagnostic has {len(errors)} errors (limit {args.max_errors}): the first one cascades")
    print(output)
    for failure in failures:
        print("FAIL:", failure)
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
