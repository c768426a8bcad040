"""Compressor throughput (GB/s of float32 input) and the error / bits trade-off.

    PYTHONPATH=src python benchmarks/compressors.py            # d = 1e6 and 1e7, trade-off at d = 2e5
    PYTHONPATH=src python benchmarks/compressors.py --quick    # smoke run (d = 2e4, 5e3)

Throughput: one sender (``x: Tensor[1, d]``), median of ``--repeats`` timed calls after one warm-up,
``compress`` and ``decompress`` timed separately; ``bits/coord`` is ``msg.bits / d``.

Trade-off: the test vector is a gradient-like stand-in: matrix blocks ``[rows, cols]`` that are rank-4
with decaying singular values plus 10% Gaussian noise (heavy-ish tails, low-rank structure, as layer
gradients tend to be). ``rel. error`` is ``||x_hat - x||^2 / ||x||^2`` averaged over ``--draws``
compressions. Writes the plot to ``docs/img/compression_tradeoff.png`` (or ``--plot``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from robustfl import compressors as C


def throughput_configs(shapes: list[tuple[int, ...]]) -> list[tuple[str, Callable[[], C.Compressor]]]:
    return [
        ("identity", C.Identity),
        ("topk 1%", lambda: C.TopK(ratio=0.01)),
        ("randk 1% (seed)", lambda: C.RandK(ratio=0.01)),
        ("randl 1%", lambda: C.RandL(ratio=0.01)),
        ("blocksampling 1%", lambda: C.BlockSampling(ratio=0.01)),
        ("sign", C.Sign),
        ("qsgd s=4 elias", lambda: C.QSGD(s=4)),
        ("qsgd s=4 fixed", lambda: C.QSGD(s=4, coding="fixed")),
        ("terngrad", C.TernGrad),
        ("blocksampling 1% + qsgd s=4", lambda: C.Compose(C.BlockSampling(ratio=0.01), C.QSGD(s=4))),
        ("atomo entries s=1%d", lambda: C.ATOMO(budget=0.01 * sum(_numel(s) for s in shapes))),
        ("atomo svd s=2", lambda: C.ATOMO(budget=2.0, atoms="svd", shapes=shapes)),
        ("powersgd r=4", lambda: C.PowerSGD(rank=4, shapes=shapes)),
    ]


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for v in shape:
        out *= v
    return out


def layer_shapes(d: int) -> list[tuple[int, ...]]:
    """Square-ish 1000 x 1000 layers (the last one smaller) covering ``d``."""
    side = min(1000, int(d**0.5))
    full, rest = divmod(d, side * side)
    shapes: list[tuple[int, ...]] = [(side, side)] * full
    if rest:
        shapes.append((rest,))
    return shapes


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput(d: int, repeats: int) -> list[str]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, d, generator=gen)
    shapes = layer_shapes(d)
    gb = x.numel() * 4 / 1e9
    rows = ["| compressor | d | compress GB/s | decompress GB/s | bits/coord |", "|---|---|---|---|---|"]
    print("\n".join(rows))
    for label, make in throughput_configs(shapes):
        c = make()
        msg = c.compress(x, gen)
        t_c = median_time(lambda c=c: c.compress(x, gen), repeats)
        t_d = median_time(lambda c=c, msg=msg: c.decompress(msg), repeats)
        rows.append(f"| {label} | {d:.0e} | {gb / t_c:.3f} | {gb / t_d:.3f} | {msg.bits / d:.4f} |")
        print(rows[-1], flush=True)
    return rows


def gradient_like(shapes: list[tuple[int, ...]], gen: torch.Generator) -> torch.Tensor:
    parts = []
    for s in shapes:
        if len(s) == 2:
            a, b = s
            u = torch.linalg.qr(torch.randn(a, 4, generator=gen)).Q
            v = torch.linalg.qr(torch.randn(b, 4, generator=gen)).Q
            m = u @ torch.diag(torch.tensor([8.0, 4.0, 2.0, 1.0])) @ v.T
            m = m + 0.1 * m.norm() / (a * b) ** 0.5 * torch.randn(a, b, generator=gen)
            parts.append(m.reshape(-1))
        else:
            parts.append(0.01 * torch.randn(_numel(s), generator=gen))
    return torch.cat(parts)


def tradeoff_configs(d: int, shapes: list[tuple[int, ...]]) -> list[tuple[str, str, C.Compressor]]:
    out: list[tuple[str, str, C.Compressor]] = [("identity", "identity", C.Identity())]
    for r in (0.001, 0.01, 0.1):
        out += [
            ("topk", f"topk {r:g}", C.TopK(ratio=r)),
            ("randk (scaled)", f"randk {r:g}", C.RandK(ratio=r)),
            ("randl", f"randl {r:g}", C.RandL(ratio=r)),
            ("atomo entries", f"atomo s={r:g}d", C.ATOMO(budget=r * d)),
        ]
    out.append(("sign", "sign", C.Sign()))
    for s in (1, 2, 4, 16, 64):
        out.append(("qsgd elias", f"qsgd s={s}", C.QSGD(s=s)))
        out.append(("qsgd fixed", f"qsgd s={s} fixed", C.QSGD(s=s, coding="fixed")))
    out.append(("terngrad", "terngrad", C.TernGrad()))
    for s in (1, 2, 4, 8):
        out.append(("atomo svd", f"atomo svd s={s}", C.ATOMO(budget=float(s), atoms="svd", shapes=shapes)))
    for r in (1, 2, 4, 8):
        out.append(("powersgd", f"powersgd r={r}", C.PowerSGD(rank=r, shapes=shapes)))
    for s in (4, 16):
        out.append(
            ("blocksampling+qsgd", f"bs 10% + qsgd s={s}", C.Compose(C.BlockSampling(ratio=0.1), C.QSGD(s=s)))
        )
    return out


def tradeoff(d: int, draws: int, plot: Path | None) -> list[str]:
    gen = torch.Generator().manual_seed(1)
    side = max(2, int((d / 5) ** 0.5))
    shapes: list[tuple[int, ...]] = [(side, side)] * 5
    d = 5 * side * side
    x = gradient_like(shapes, gen).unsqueeze(0)
    rows = ["| compressor | bits/coord | rel. error |", "|---|---|---|"]
    print("\n".join(rows))
    points: dict[str, list[tuple[float, float]]] = {}
    for family, label, c in tradeoff_configs(d, shapes):
        bits, errs = [], []
        for _ in range(draws):
            c.reset()
            msg = c.compress(x, gen)
            out = c.decompress(msg)
            bits.append(msg.bits / d)
            errs.append(float(((out - x) ** 2).sum() / (x**2).sum()))
        b, e = statistics.mean(bits), statistics.mean(errs)
        rows.append(f"| {label} | {b:.4f} | {e:.4g} |")
        print(rows[-1], flush=True)
        points.setdefault(family, []).append((b, e))
    if plot is not None:
        _plot(points, plot, d)
    return rows


def _plot(points: dict[str, list[tuple[float, float]]], path: Path, d: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = "os^vD<>pPX*h"
    colors = plt.get_cmap("tab20").colors
    unbiased = {"atomo entries", "atomo svd", "qsgd elias", "qsgd fixed", "randk (scaled)", "terngrad"}
    for i, (family, pts) in enumerate(sorted(points.items())):
        if family == "identity":  # zero error at 32 bits/coord: off a log axis
            continue
        pts = sorted(pts)
        ax.plot(
            [p[0] for p in pts],
            [max(p[1], 1e-8) for p in pts],
            marker=markers[i % len(markers)],
            color=colors[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20],
            linestyle="-" if family in unbiased else "--",
            label=family + (" (unbiased)" if family in unbiased else ""),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bits per coordinate (exact message size / d)")
    ax.set_ylabel("relative error  E||x_hat - x||^2 / ||x||^2")
    ax.set_title(f"Compression trade-off, gradient-like vector, d = {d}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def qbgmd_bits(n: int, d: int) -> list[str]:
    """Bits per round of QBGMD's two readings next to full-precision BGMD (32 bits per coordinate)."""
    from robustfl.compressors.qbgmd import QBGMD

    gen = torch.Generator().manual_seed(2)
    g = gradient_like(layer_shapes(d), gen).expand(n, -1) + 0.01 * torch.randn(n, d, generator=gen)
    rows = ["| setting | bits per round | bits per client per coord |", "|---|---|---|"]
    rows.append(f"| BGMD, float32 rows | {32 * n * d} | 32.000 |")
    for s in (4, 16):
        for reading in ("quantize", "block"):
            r = QBGMD(s=s, ratio=0.1, reading=reading).round(g, gen)
            rows.append(f"| QBGMD s={s}, k=0.1d, {reading} | {r.bits} | {r.bits / (n * d):.3f} |")
    print("\n".join(rows), flush=True)
    return rows


def wire_timing(d: int, repeats: int) -> list[str]:
    """Seconds to turn one QSGD message into bytes and back (the Elias stream dominates)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, d, generator=gen)
    rows = ["| message | non-zeros | bytes | to_bytes s | from_bytes s |", "|---|---|---|---|---|"]
    print("\n".join(rows))
    for s in (4, 64, 1024):
        msg = C.QSGD(s=s).compress(x, gen)
        data = msg.to_bytes()
        t_enc = median_time(msg.to_bytes, repeats)
        t_dec = median_time(lambda data=data: C.Message.from_bytes(data), repeats)
        nnz = int((msg.get("levels") != 0).sum())
        rows.append(f"| qsgd s={s}, d={d:.0e} | {nnz} | {len(data)} | {t_enc:.3f} | {t_dec:.3f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (smoke test)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--plot", type=Path, default=Path("docs/img/compression_tradeoff.png"))
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sizes = [20_000] if args.quick else [1_000_000, 10_000_000]
    repeats = 1 if args.quick else args.repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n## Throughput (one sender, float32 input)\n")
    for d in sizes:
        throughput(d, repeats)
    print("\n## Wire format: QSGD (Elias) message to bytes and back\n")
    wire_timing(sizes[0], repeats)
    d_q = 5_000 if args.quick else 100_000
    print(f"\n## QBGMD bits per round (n = 10, d = {d_q})\n")
    qbgmd_bits(10, d_q)
    print("\n## Error / bits trade-off\n")
    tradeoff(
        5_000 if args.quick else 200_000,
        1 if args.quick else args.draws,
        None if args.no_plot else args.plot,
    )


if __name__ == "__main__":
    main()
