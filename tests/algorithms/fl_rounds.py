"""A hand-rolled round loop on per-client quadratics, for checking algorithms against their equations.

Client ``i`` minimises ``f_i(x) = a_i/2 ||x - t_i||^2``; its minibatches carry ``t_i`` (plus optional
noise) and its labels ``a_i - 1``, so ``grad_fn(x, batch, labels) = (1 + mean(labels)) (x - mean(batch))``.
The optimum of ``sum_i f_i`` is ``sum_i a_i t_i / sum_i a_i``.
"""

from collections.abc import Callable

import torch
from torch import Tensor

from robustfl.aggregators.base import Aggregator
from robustfl.aggregators.mean import Average
from robustfl.algorithms import Algorithm, Cohort
from robustfl.engine.phases import aggregators_for, as_parts, from_parts

Attack = Callable[[str, Tensor], Tensor]
"""``attack(part, true_byzantine_rows) -> rows`` the Byzantine clients send instead."""


def quad_grad(params: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    a = 1.0 + y.float().mean()
    diff = params - x.mean(dim=0)
    return a * diff, 0.5 * a * diff.pow(2).sum()


def client_batches(
    target: Tensor, steps: int, noise: float = 0.0, gen: torch.Generator | None = None
) -> Tensor:
    xs = target.expand(steps, 4, target.numel()).clone()
    if noise:
        xs = xs + noise * torch.randn(xs.shape, generator=gen)
    return xs


def run_rounds(
    alg: Algorithm,
    targets: Tensor,
    rounds: int,
    lr: float,
    aggregator: Aggregator | None = None,
    f: int = 0,
    attack: Attack | None = None,
    noise: float = 0.0,
    params: Tensor | None = None,
    curvature: Tensor | None = None,
) -> tuple[Tensor, list[dict[str, Tensor]], dict[str, Tensor]]:
    """``rounds`` full-participation rounds; the last ``f`` clients are Byzantine and send ``attack``'s rows.
    ``curvature[i]`` is ``a_i`` (default 1)."""
    n, d = targets.shape
    params = torch.zeros(d) if params is None else params
    states = [alg.init_client_state(params) for _ in range(n)]
    server = alg.init_server_state(params)
    aggs = aggregators_for(aggregator or Average(), alg.parts)
    gen = torch.Generator().manual_seed(0)
    for r in range(rounds):
        shared = alg.broadcast(params, server, r)
        outs = []
        for i in range(n):
            xs = client_batches(targets[i], alg.local_steps, noise, gen)
            a = 1.0 if curvature is None else float(curvature[i])
            ys = torch.full((alg.local_steps, 4), a - 1.0)
            out = alg.client_step(shared, xs, ys, states[i], lr, quad_grad)
            states[i] = out.state
            outs.append(out.message)
        stacked = (
            torch.stack(outs)  # type: ignore[arg-type]
            if isinstance(outs[0], Tensor)
            else {k: torch.stack([o[k] for o in outs]) for k in alg.parts}  # type: ignore[index]
        )
        parts = as_parts(stacked, alg.parts)
        if f and attack is not None:
            parts = {k: torch.cat([v[: n - f], attack(k, v[n - f :])]) for k, v in parts.items()}
        result = alg.server_step(params, from_parts(parts), aggs, server, lr, r, Cohort.of(n, f))
        params, server = result.params, result.state
    return params, states, server
