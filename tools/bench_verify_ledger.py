#!/usr/bin/env python3
"""Throughput check: python3 tools/bench_verify_ledger.py [N]  (default 200000 events).

Generates an N-event export and its signed checkpoint in a temporary directory (with the test suite's
independent fixture helpers), then times `verify_ledger.py --export` in a fresh interpreter.
"""

import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import test_verify_ledger as t  # noqa: E402  (fixture helpers)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory() as d:
        events = t.make_log(n)
        export = os.path.join(d, "events.jsonl")
        with open(export, "w", encoding="utf-8") as f:
            f.write(t.export_text(events))
        checkpoint = os.path.join(d, "checkpoint.txt")
        with open(checkpoint, "w", encoding="utf-8") as f:
            f.write(t.make_checkpoint(n, t.naive_mth(t.leaves_of(events))))
        del events
        size = os.path.getsize(export)
        start = time.perf_counter()
        p = subprocess.run([sys.executable, os.path.join(HERE, "verify_ledger.py"), "--export", export,
                            "--checkpoint", checkpoint, "--vkey", t.make_vkey(t.ORIGIN, t.SEED)],
                           capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        print((p.stdout + p.stderr).strip())
        print(f"{n} events ({size / n:.0f} bytes/line, {size / 1e6:.1f} MB) in {elapsed:.2f} s "
              f"(whole process): {n / elapsed:,.0f} events/s")
        return p.returncode


if __name__ == "__main__":
    sys.exit(main())
