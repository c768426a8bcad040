"""FedMA: time to match one layer against the number of clients J and the layer width L.

Synthetic layer (documented so the numbers can be reproduced): a base of L neurons in D dimensions
with entries N(0, 4/D) (‖v‖² ≈ 4); each client holds a random 80% of the base neurons (permuted, plus
N(0, 0.04/D) noise) and 20% neurons of its own. Prints, per (J, L), the seconds of one
``match_neurons`` call (up to 5 sweeps) for three costs: BBP-MAP with the chapter's VGG-9 values
(γ0 = 7, σ0² = σ² = 1), BBP-MAP with the variances of this synthetic layer (σ0² = 4/D, σ² = 0.04/D) and ``log_det=True``,
and squared Euclidean with threshold ε = 2; the global width
it finds (ideal: L + 0.2 L J, the base neurons plus every client's own), the sweeps made and the
milliseconds per client visit (one cost matrix and one ``linear_sum_assignment``).

With ``--compare``: FedMA vs FedAvg (same SGD trainer, same local epochs) vs the local models and
their ensemble on the embedded MNIST sample split over J clients by Dirichlet(α); FedMA's R rounds
take R·N communications (N layers), FedAvg gets as many rounds; "PFNM" is the one-shot matched
average of the local models (no retraining). Prints accuracy, communications, bytes and the growth
rate per round.

    PYTHONPATH=src python benchmarks/fedma.py [--quick] [--threads 1]
    PYTHONPATH=src python benchmarks/fedma.py --compare [--clients 8 --alpha 0.1 --hidden 100 --epochs 5 --rounds 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from robustfl.algorithms.fedma import (
    BBPMAPCost,
    SGDTrainer,
    SquaredEuclideanCost,
    accuracy,
    fedma,
    growth_table,
    layer_chain,
    match_neurons,
    matched_average,
    width_factory,
    widths,
)
from robustfl.algorithms.fedma.baselines import ensemble_accuracy, fedavg, local_models
from robustfl.data import load_dataset, partition


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


def compare(args: argparse.Namespace) -> None:
    ds = load_dataset("embedded-mnist")
    parts = partition(
        ds.y_train, args.clients, "dirichlet", generator=torch.Generator().manual_seed(0), alpha=args.alpha
    )
    clients = [(ds.x_train[p], ds.y_train[p]) for p in parts]
    hidden = [int(h) for h in args.hidden.split(",")]
    make = width_factory("mlp", ds.input_shape, ds.num_classes)
    trainer = SGDTrainer(epochs=args.epochs, lr=0.01, batch_size=32)

    def evaluate(model: torch.nn.Module) -> float:
        return accuracy(model, ds.x_test, ds.y_test)

    print(
        f"embedded MNIST ({ds.y_train.numel()} train / {ds.y_test.numel()} test), mlp {hidden}, "
        f"J = {args.clients}, Dirichlet({args.alpha}) sizes {[p.numel() for p in parts]}, E = {args.epochs}"
    )
    print(
        f"{'method':<9} {'round':>5} {'comms':>5} {'MB up':>7} {'MB down':>8} {'accuracy':>8} {'growth':>7}"
    )
    original = make(hidden).state_dict()
    result = fedma(
        clients, make, [hidden] * args.clients, ds.num_classes, trainer, rounds=args.rounds, evaluate=evaluate
    )
    growth = growth_table(original, result.global_state)[-1].rate
    for h in result.history:
        print(
            f"{'FedMA':<9} {h.round:>5} {h.communications:>5} {h.bytes_up / 1e6:>7.2f} {h.bytes_down / 1e6:>8.2f} "
            f"{h.accuracy:>8.3f} {growth:>6.2f}x"
        )
    _, history = fedavg(
        clients, make, hidden, trainer, rounds=args.rounds * (len(hidden) + 1), evaluate=evaluate
    )
    for h in history:
        print(
            f"{'FedAvg':<9} {h.round:>5} {h.communications:>5} {h.bytes_up / 1e6:>7.2f} {h.bytes_down / 1e6:>8.2f} "
            f"{h.accuracy:>8.3f} {1.0:>6.2f}x"
        )
    models = local_models(clients, make, [hidden] * args.clients, trainer)
    states = [{k: v.detach() for k, v in m.state_dict().items()} for m in models]
    counts = torch.stack([torch.bincount(y, minlength=ds.num_classes) for _, y in clients])
    pfnm, _ = matched_average(states, layer_chain(models[0]), BBPMAPCost(), counts)
    one_shot = make(widths(layer_chain(models[0]), pfnm))
    one_shot.load_state_dict(pfnm)
    up = sum(v.numel() * 4 for s in states for v in s.values())
    down = args.clients * sum(v.numel() * 4 for v in pfnm.values())
    rate = growth_table(original, pfnm)[-1].rate
    print(
        f"{'PFNM':<9} {1:>5} {1:>5} {up / 1e6:>7.2f} {down / 1e6:>8.2f} {evaluate(one_shot):>8.3f} {rate:>6.2f}x"
    )
    ensemble = ensemble_accuracy(models, ds.x_test, ds.y_test)
    print(f"{'ensemble':<9} {'':>5} {0:>5} {'':>7} {'':>8} {ensemble:>8.3f} {args.clients:>6.2f}x")
    local = [evaluate(m) for m in models]
    print(f"local models: mean {sum(local) / len(local):.3f}, best {max(local):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS intra-op threads")
    parser.add_argument(
        "--dim", type=int, default=577, help="neuron dimension D (577 = 64·3·3 + 1, a conv layer)"
    )
    parser.add_argument("--compare", action="store_true", help="FedMA vs FedAvg on the embedded MNIST sample")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--hidden", default="100", help="MLP hidden widths, comma-separated")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare:
        compare(args)
        return
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
