"""Per-iteration bits and modelled time of layer-wise gradient codes on ResNet-18 (ATOMO §5 setup).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/atomo.py            # ResNet-18, batch 32
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/atomo.py --quick    # LeNet smoke run

One real gradient (ResNet-18 at batch ``--batch`` of the embedded MNIST digits, resized channels as
the model reads them) is coded layer by layer with each method of the ATOMO experiments (Wang et al.,
NeurIPS 2018, §5; seed 004 §3.5): spectral-ATOMO with budget s = 1..4 per layer (conv kernels as
``[xy/2, 2k^2]``), b-bit QSGD with one bucket per layer (b = 1, 2, 4, 8, Elias-coded), TernGrad per
layer, SIGNUM's one bit per coordinate, and uncompressed float32 (vanilla SGD); one extra row codes
the kernels as ``[out, in k^2]`` instead, to show what the view costs. For each: exact bits of one worker's message, the
measured encode (compress) and decode time of one message, the relative error ``||g_hat - g||^2 /
||g||^2`` of that draw, and one iteration on the ATOMO cluster modelled by ``robustfl.commtime``:
16 g2.2xlarge workers and a parameter server (1 Gbit/s assumed), ``compute + encode + gather of 16
messages + 16 decodes + broadcast of the float32 model``. Compute is the measured gradient time;
encode/decode are one timed call after one warm-up call (the bit packing of ``to_bytes`` is not
included: ``msg.bits`` is what a packed message would take).
Figure 3.1 of the dissertation shows the same breakdown (compute, encode, communication) measured on
real clusters; the speed-ups of Tables 3.3–3.4 are times to a target accuracy and need training runs.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from robustfl import compressors as C
from robustfl.commtime import cluster
from robustfl.data import load_dataset
from robustfl.models import build_model


def gradient(model_name: str, batch: int) -> tuple[torch.Tensor, list[tuple[int, ...]], float]:
    """One flat gradient of ``model_name`` on ``batch`` embedded MNIST digits, its shapes and seconds."""
    ds = load_dataset("embedded-mnist")
    torch.manual_seed(0)
    model = build_model(model_name, ds.input_shape, ds.num_classes)
    x, y = ds.x_train[:batch], ds.y_train[:batch]
    start = time.perf_counter()
    nn.functional.cross_entropy(model(x), y).backward()
    seconds = time.perf_counter() - start
    grads = [p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]
    return torch.cat(grads), [tuple(p.shape) for p in model.parameters()], seconds


def methods(shapes: list[tuple[int, ...]]) -> list[tuple[str, C.Compressor]]:
    out: list[tuple[str, C.Compressor]] = [("vanilla SGD (float32)", C.Identity())]
    out += [(f"spectral-ATOMO s={s}", C.get("spectral-atomo", budget=s, shapes=shapes)) for s in (1, 2, 3, 4)]
    out.append(
        (
            "spectral-ATOMO s=2, conv [out, in k^2]",
            C.get("spectral-atomo", budget=2, shapes=shapes, conv="out"),
        )
    )
    out += [(f"QSGD b={b}", C.get("qsgd-layers", bits=b, shapes=shapes)) for b in (1, 2, 4, 8)]
    out.append(("TernGrad (per layer)", C.get("terngrad-layers", shapes=shapes)))
    out.append(("SIGNUM (1 bit / coord)", C.Signum(beta=0.0)))
    return out


def bench(model_name: str, batch: int) -> list[str]:
    g, shapes, compute = gradient(model_name, batch)
    c = cluster("g2.2xlarge-16")
    d = g.numel()
    rows = [
        f"model={model_name} d={d:,} compute={compute:.3f}s cluster={c.name} "
        f"({c.workers} workers, {c.bandwidth_gbps:g} Gbit/s, {c.latency_s * 1e6:g} us)",
        "| method | bits / worker | bits / coord | encode (s) | decode (s) | rel. error | iteration (s) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = None
    for label, comp in methods(shapes):
        comp.decompress(comp.compress(g, torch.Generator().manual_seed(0)))  # warm-up
        rng = torch.Generator().manual_seed(1)
        start = time.perf_counter()
        msg = comp.compress(g, rng)
        encode = time.perf_counter() - start
        start = time.perf_counter()
        g_hat = comp.decompress(msg)
        decode = time.perf_counter() - start
        error = float((g_hat - g).square().sum() / g.square().sum())
        comm = c.communication("ps", [msg.bits] * c.workers, down_bits=32 * d)
        total = compute + encode + comm + c.workers * decode
        base = total if base is None else base
        rows.append(
            f"| {label} | {msg.bits:,} | {msg.bits / d:.3f} | {encode:.3f} | {decode:.3f} | "
            f"{error:.3g} | {total:.3f} | {base / total:.2f}x |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="LeNet, batch 8")
    args = parser.parse_args()
    model, batch = ("lenet", 8) if args.quick else (args.model, args.batch)
    for row in bench(model, batch):
        print(row)


if __name__ == "__main__":
    main()
