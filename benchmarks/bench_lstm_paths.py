"""Per-client gradients of the ``lstm`` model: one ``vmap(grad)`` call vs a plain loop over clients.

``nn.LSTM``'s fused kernel has no vmap batching rule, so vmap falls back to a per-sample loop; this
script measures whether the engine's plain loop is faster (it is why ``prefers_loop`` is true for
LSTMs). Prints both times and their ratio, measured in this one run.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_lstm_paths.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from robustfl.models import build_model


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    clients, batch, seq, repeats = (4, 4, 10, 1) if args.quick else (16, 10, 80, 3)
    torch.manual_seed(0)
    model = build_model("lstm", (seq,), 80)
    params = {k: v.detach().expand(clients, *v.shape).clone() for k, v in model.named_parameters()}
    x = torch.randint(0, 80, (clients, batch, seq))
    y = torch.randint(0, 80, (clients, batch))

    def loss(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (xb,)), yb)

    batched = vmap(grad(loss))

    def loop() -> list[tuple[Tensor, ...]]:
        out = []
        for c in range(clients):
            p = {k: v[c].requires_grad_() for k, v in params.items()}
            out.append(torch.autograd.grad(loss(p, x[c], y[c]), list(p.values())))
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_vmap = timed(lambda: batched(params, x, y), repeats)
    t_loop = timed(loop, repeats)
    print(f"clients={clients} batch={batch} seq={seq} threads={torch.get_num_threads()}")
    print(f"vmap(grad) with the fallback: {t_vmap * 1e3:8.1f} ms")
    print(f"loop over clients:            {t_loop * 1e3:8.1f} ms")
    print(f"loop speed-up: {t_vmap / t_loop:.2f}x")


if __name__ == "__main__":
    main()
