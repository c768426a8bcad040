"""Cost of ``Message.from_bytes`` on hostile and on large valid messages (time and peak memory).

    PYTHONPATH=src python benchmarks/wire_decode.py           # the 500 KB zero run, a ~1 MiB dense QSGD row
    PYTHONPATH=src python benchmarks/wire_decode.py --quick   # smoke run (small sizes)

- ``zero run``: a QSGD message (d = 2**22) whose one Elias row is a single gap code made of a run of
  ``--zero-kb`` KB of zero bits (then its 1 and value bits): a Byzantine payload aimed at the decoder.
- ``dense qsgd``: a valid QSGD(s=4096) message of one sender over ``--dense-d`` coordinates, every
  level non-zero (about 1 MiB on the wire at the default size), decoded and decompressed.

Peak memory is ``tracemalloc``'s peak (numpy and torch CPU buffers are traced) during the decode; the
times are one call's wall clock and CPU time (``time.process_time``: steadier than the wall clock on a
shared machine), medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time
import tracemalloc
import zlib

import numpy as np
import torch

from robustfl import compressors as C
from robustfl.compressors.wire import VERSION, Expect


def zero_run_message(kilobytes: int, d: int = 2**22) -> bytes:
    """A one-row QSGD(s=1) frame whose Elias row is one gap code with ``8 kilobytes / 2`` zeros."""
    zeros = kilobytes * 1000 * 4
    bits = np.zeros(2 * zeros + 3, dtype=bool)
    bits[zeros] = True  # the gap code's leading 1; its value bits are zeros
    bits[-1] = True  # sign +, level code "1"
    params = C.QSGD(s=1).wire_params().encode()
    body = b"RFLC" + struct.pack("<BBB", VERSION, 0, 3) + b"\x04qsgd" + struct.pack("<H", len(params))
    body += params + struct.pack("<IIB", 1, d, 1)
    body += b"\x06levels" + struct.pack("<BBB", 3, 1, 0) + struct.pack("<BII", 2, 1, d)
    body += struct.pack("<I", bits.size) + np.packbits(bits, bitorder="little").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def measure(label: str, data: bytes, decode: object, repeats: int) -> str:
    times, cpu, peak, outcome = [], [], 0, "decoded"
    for _ in range(repeats):
        tracemalloc.start()
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            decode(data)  # type: ignore[operator]
        except ValueError as err:
            outcome = f"ValueError: {str(err)[:60]}"
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    row = (
        f"| {label} | {len(data)} | {statistics.median(times):.3f} | {statistics.median(cpu):.3f} | "
        f"{peak / 2**20:.1f} | "
        f"{peak / len(data):.0f} | {outcome} |"
    )
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--zero-kb", type=int, default=500)
    parser.add_argument("--dense-d", type=int, default=1_750_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    zero_kb, dense_d = (20, 50_000) if args.quick else (args.zero_kb, args.dense_d)
    print("| message | bytes | wall s | CPU s | peak MiB | peak bytes per byte | outcome |")
    print("|---|---|---|---|---|---|---|")
    data = zero_run_message(zero_kb)
    measure(f"zero run {zero_kb} KB, default Expect()", data, C.Message.from_bytes, args.repeats)
    x = torch.randn(1, dense_d, generator=torch.Generator().manual_seed(0))
    qsgd = C.QSGD(s=4096)
    data = qsgd.compress(x, torch.Generator().manual_seed(1)).to_bytes()
    expect = Expect(d=dense_d, senders=1)
    measure(
        f"dense qsgd s=4096, d={dense_d}, from_bytes",
        data,
        lambda b: C.Message.from_bytes(b, expect),
        args.repeats,
    )
    measure(
        f"dense qsgd s=4096, d={dense_d}, from_bytes + decompress",
        data,
        lambda b: qsgd.decompress(C.Message.from_bytes(b, expect)),
        args.repeats,
    )


if __name__ == "__main__":
    main()
