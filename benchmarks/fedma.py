"""FedMA: time to match one layer against the number of clients J and the layer width L.

Synthetic layer (documented so the numbers can be reproduced): a base of L neurons in D dimensions
with entries N(0, 4/D) (‖v‖² ≈ 4); each client holds a random 80% of the base neurons (permuted, plus
N(0, 0.04/D) noise) and 20% neurons of its own. Prints, per (J, L), the seconds of one
``match_neurons`` call (up to 5 sweeps) for three costs: BBP-MAP with the chapter's VGG-9 values
(γ0 = 7, σ0² = σ² = 1), BBP-MAP with the variances of this synthetic layer (σ0² = 4/D, σ² = 0.04/D) and ``log_det=True``,
and squared Euclidean with threshold ε = 2; the global width
it finds (ideal: L + 0.2 L J, the base neurons plus every client's own), the sweeps made and the
milliseconds per client visit (one cost matrix and one ``linear_sum_assignment``).

    PYTHONPATH=src python benchmarks/fedma.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from robustfl.algorithms.fedma import BBPMAPCost, SquaredEuclideanCost, match_neurons


def layer(clients: int, width: int, dim: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    scale = (4.0 / dim) ** 0.5
    base = scale * torch.randn(width, dim, generator=g)
    shared = int(0.8 * width)
    out = []
    for _ in range(clients):
        keep = base[torch.randperm(width, generator=g)[:shared]]
        keep = keep + 0.1 * scale * torch.randn(keep.shape, generator=g)
        own = scale * torch.randn(width - shared, dim, generator=g)
        out.append(torch.cat([keep, own])[torch.randperm(width, generator=g)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS intra-op threads")
    parser.add_argument(
        "--dim", type=int, default=577, help="neuron dimension D (577 = 64·3·3 + 1, a conv layer)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    grid = [(4, 16)] if args.quick else [(j, w) for j in (4, 16, 66) for w in (64, 256)]
    costs = {
        "bbp-map": BBPMAPCost(),
        "bbp-map(fit,logdet)": BBPMAPCost(sigma0_sq=4.0 / args.dim, sigma_sq=0.04 / args.dim, log_det=True),
        "sq-euclid(eps=2)": SquaredEuclideanCost(threshold=2.0),
    }
    print(f"D = {args.dim}, threads = {args.threads}")
    print(
        f"{'cost':<19} {'J':>3} {'L':>4} {'global L':>9} {'ideal':>6} {'sweeps':>6} {'seconds':>9} {'ms/visit':>9}"
    )
    for name, cost in costs.items():
        for clients, width in grid:
            neurons = layer(clients, width, args.dim, seed=clients * 1000 + width)
            start = time.perf_counter()
            matching = match_neurons(neurons, cost, iterations=5)
            seconds = time.perf_counter() - start
            ideal = width + (width - int(0.8 * width)) * clients
            visits = clients * matching.sweeps
            print(
                f"{name:<19} {clients:>3} {width:>4} {matching.size:>9} {ideal:>6} {matching.sweeps:>6} {seconds:>9.3f} "
                f"{1000 * seconds / visits:>9.2f}"
            )


if __name__ == "__main__":
    main()
