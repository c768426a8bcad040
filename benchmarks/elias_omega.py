"""QSGD's gap/sign/level stream in Elias-gamma vs Elias-omega codes on one real gradient.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/elias_omega.py            # ResNet-18, batch 32
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/elias_omega.py --quick    # LeNet, batch 8

One gradient (``benchmarks/atomo.py``'s: the model at initialisation on a batch of the embedded MNIST
digits) is quantised by QSGD with s in {1, 3, 15, 255} levels, once with one bucket for the whole
vector and once with one bucket per layer (``qsgd-layers``, b = 1, 2, 4, 8 bits). Both codings see
the same levels (same random draw), so the bit counts differ only by the integer code: exact bits of
the message (norms included), bits per coordinate, and omega / gamma. With ``--time``, the seconds to
encode and to decode the per-layer level streams with each code (one call each, side by side).
"""

from __future__ import annotations

import argparse
import time

import torch

from atomo import gradient
from robustfl import compressors as C
from robustfl.compressors.base import Message


def coded(s: int, coding: str, shapes: list[tuple[int, ...]] | None) -> C.Compressor:
    if shapes is None:
        return C.QSGD(s=s, coding=coding)
    return C.get("qsgd-layers", bits=s.bit_length(), shapes=shapes, coding=coding)


def code_seconds(msg: Message) -> tuple[float, float]:
    """Seconds to encode and to decode every level stream of ``msg``."""
    fields = [f for k, f in msg.fields.items() if k.endswith("levels")]
    start = time.perf_counter()
    streams = [f.codec.encode(f.data) for f in fields]
    mid = time.perf_counter()
    for f, rows in zip(fields, streams, strict=True):
        f.codec.decode(rows, tuple(f.data.shape))
    return mid - start, time.perf_counter() - mid


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="LeNet, batch 8")
    parser.add_argument("--time", action="store_true", help="also time encode/decode per layer")
    args = parser.parse_args()
    model, batch = ("lenet", 8) if args.quick else (args.model, args.batch)
    g, shapes, _ = gradient(model, batch)
    d = g.numel()
    print(f"{model}, d = {d:,}")
    header = "| s | bucket | bits gamma | bits omega | omega / gamma | bits/coord gamma | bits/coord omega |"
    if args.time:
        header += " enc gamma (s) | enc omega (s) | dec gamma (s) | dec omega (s) |"
    print(header)
    print("|" + "---:|" * (header.count("|") - 1))
    for s in (1, 3, 15, 255):
        for bucket, sh in (("vector", None), ("layer", shapes)):
            msgs = {
                coding: coded(s, coding, sh).compress(g[None], torch.Generator().manual_seed(s))
                for coding in ("elias", "elias-omega")
            }
            gamma, omega = msgs["elias"].bits, msgs["elias-omega"].bits
            row = f"| {s} | {bucket} | {gamma:,} | {omega:,} | {omega / gamma:.3f} | {gamma / d:.4f} | {omega / d:.4f} |"
            if args.time and sh is not None:
                (eg, dg), (eo, do) = code_seconds(msgs["elias"]), code_seconds(msgs["elias-omega"])
                row += f" {eg:.2f} | {eo:.2f} | {dg:.2f} | {do:.2f} |"
            print(row)


if __name__ == "__main__":
    main()
