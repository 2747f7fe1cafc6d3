"""Peak extra memory of saving a model: `XLinearModel.save` of a model file loaded with
`mmap=True`, the process's anonymous memory (`RssAnon`, private to it) sampled every 2 ms from a
thread during the save. A save that first builds the file in memory adds about the file's size;
one that writes as it goes adds almost nothing.

    python benches/save_memory.py MODEL_FILE [--repeats 3]

Each run is a fresh process (this script again, with --child); prints one line per run. To
compare two builds, alternate runs with PYTHONPATH pointing at each.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time


def anon_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon"):
                return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


def child(model_file: str) -> None:
    from pecos_rs import _pecos_rs

    model = _pecos_rs.XLinearModel.load(model_file, mmap=True)
    before = anon_kb()
    peak, done = [before], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon_kb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "model.bin")
        t0 = time.perf_counter()
        model.save(out)
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        same = open(out, "rb").read() == open(model_file, "rb").read()
    print(f"model file {os.path.getsize(model_file) / 1e6:.0f} MB: anon before {before / 1e3:.0f} MB, "
          f"peak during save {peak[0] / 1e3:.0f} MB (+{(peak[0] - before) / 1e3:.0f}), {seconds:.2f} s, "
          f"file identical: {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.model_file)
        return
    for _ in range(args.repeats):
        subprocess.run([sys.executable, __file__, args.model_file, "--child"], check=True)


if __name__ == "__main__":
    main()
