"""Per-client LSTM gradients under ``vmap``: robustfl's ``lstm`` (plain tensor algebra) vs ``nn.LSTM``.

The engine computes every client's gradient in one ``vmap(grad(loss))`` call with per-client weights.
``nn.LSTM``'s fused kernel has no batching rule, so vmap falls back to a per-client loop; our layer
is batched natively. Prints the time of each and the ratio, measured in this one run.

    PYTHONPATH=src python benchmarks/bench_lstm_vmap.py [--quick]
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


class TorchLSTM(nn.Module):
    """The same network with ``nn.LSTM`` (reference only)."""

    def __init__(self, vocab: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.encoder = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        out, _ = self.lstm(self.encoder(tokens))
        return self.decoder(out[:, -1])


def per_client_grads(model: nn.Module, clients: int, batch: int, seq: int) -> Callable[[], object]:
    params = {
        k: v.detach().unsqueeze(0).expand(clients, *v.shape).clone() for k, v in model.named_parameters()
    }
    x = torch.randint(0, 80, (clients, batch, seq))
    y = torch.randint(0, 80, (clients, batch))

    def loss(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (xb,)), yb)

    step = vmap(grad(loss))
    return lambda: step(params, x, y)


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
    ours = per_client_grads(build_model("lstm", (seq,), 80), clients, batch, seq)
    ref = per_client_grads(TorchLSTM(80, 8, 256), clients, batch, seq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_ref = timed(ref, repeats)
    t_ours = timed(ours, repeats)
    print(f"clients={clients} batch={batch} seq={seq} threads={torch.get_num_threads()}")
    print(f"nn.LSTM under vmap (fallback loop): {t_ref * 1e3:8.1f} ms")
    print(f"robustfl lstm under vmap:           {t_ours * 1e3:8.1f} ms")
    print(f"speed-up: {t_ref / t_ours:.2f}x")


if __name__ == "__main__":
    main()
