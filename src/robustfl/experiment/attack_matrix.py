"""The attack matrix: every robust aggregator against every message attack on real gradients.

Honest messages are per-client minibatch gradients of a multinomial logistic regression on the
embedded MNIST sample (5000 images, 784 pixels + bias, 10 classes: ``d = 7850``), split IID over
``n`` clients and taken at a "trained-ish" point reached by full-batch gradient descent. The last
``f = round(byz_fraction * n)`` clients are Byzantine: their true gradients are the attacks' ``own``
messages, and the attacks see the ``h = n - f`` honest ones.

The error of a rule under an attack is ``||agg(honest ++ byz) - mean(honest)|| / spread`` with the
honest spread ``spread = (1/h) sum_i ||g_i - mean(honest)||`` (the typical distance of an honest
message to the honest mean), taken as the median over ``rounds`` independent minibatch draws.
An error below 1 means the rule's output is closer to the honest mean than an average honest message.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustfl.aggregators.base import AGGREGATORS, Aggregator, PreAggregator
from robustfl.aggregators.clipping import CenteredClipping
from robustfl.aggregators.fltrust import ReferenceRule
from robustfl.attacks.base import ATTACKS, Attack
from robustfl.attacks.optimal import _OptimalFactor
from robustfl.utils import make_generator

EMBEDDED_MNIST = Path(__file__).resolve().parent.parent / "data" / "embedded" / "mnist5k.npz"

# Parameters whose defaults are scale-free in the registry but not sensible on raw gradients: the
# chapter-8 RFA settings for the geometric median (with a tolerance so it stops once converged), and
# centered clipping with a few iterations (its centre and radius come from a previous round, ``_warm``).
RULE_OVERRIDES: dict[str, dict[str, Any]] = {
    "geometric-median": {"nu": 1e-5, "T": 500, "tol": 1e-6},
    "centered-clipping": {"L": 3},
}

# Rules whose single-call output is not an estimate of the mean gradient, so the error is meaningless.
NOT_MEAN_ESTIMATES: dict[str, str] = {
    "sign-majority": "outputs signs in {-1, 0, 1}, not an estimate of the mean",
    "bgmd": "outputs one block of coordinates plus memory, not an estimate of the mean",
}


def load_mnist(path: Path = EMBEDDED_MNIST) -> tuple[Tensor, Tensor]:
    """The embedded sample as ``x: float32[5000, 785]`` (pixels in [0, 1], then a bias 1) and ``y``."""
    with np.load(path) as d:
        x = torch.from_numpy(d["x"].reshape(d["x"].shape[0], -1)).float() / 255.0
        y = torch.from_numpy(d["y"]).long()
    return torch.cat([x, torch.ones(x.shape[0], 1)], dim=1), y


def _logreg_grad(w: Tensor, x: Tensor, onehot: Tensor) -> Tensor:
    """Gradient of the mean cross-entropy of ``softmax(x @ w)``: ``x^T (p - onehot) / b`` (batched)."""
    p = torch.softmax(x @ w, dim=-1)
    return x.transpose(-1, -2) @ (p - onehot) / x.shape[-2]


@dataclass(frozen=True)
class GradientProblem:
    """Per-client minibatch gradients of logistic regression at a fixed trained-ish weight ``w``."""

    w: Tensor
    shards: Tensor  # [n, m, 785] client data
    labels: Tensor  # [n, m, 10] one-hot
    batch: int

    @classmethod
    def build(
        cls, n_clients: int, seed: int, warm_steps: int, batch: int = 32, lr: float = 0.5
    ) -> GradientProblem:
        x, y = load_mnist()
        onehot = torch.nn.functional.one_hot(y, 10).float()
        w = torch.zeros(x.shape[1], 10)
        for _ in range(warm_steps):
            w -= lr * _logreg_grad(w, x, onehot)
        per = x.shape[0] // n_clients
        order = torch.randperm(x.shape[0], generator=make_generator(seed, "matrix", "split"))[
            : per * n_clients
        ]
        return cls(w, x[order].view(n_clients, per, -1), onehot[order].view(n_clients, per, -1), batch)

    def gradients(self, generator: torch.Generator) -> Tensor:
        """One round: every client's gradient on a fresh minibatch, as ``Tensor[n, 7850]``."""
        n, m, _ = self.shards.shape
        idx = torch.rand(n, m, generator=generator).argsort(dim=1)[:, : self.batch]
        xb = torch.gather(self.shards, 1, idx.unsqueeze(-1).expand(-1, -1, self.shards.shape[-1]))
        yb = torch.gather(self.labels, 1, idx.unsqueeze(-1).expand(-1, -1, 10))
        return _logreg_grad(self.w, xb, yb).reshape(n, -1)


def root_gradient(problem: GradientProblem, generator: torch.Generator, size: int = 100) -> Tensor:
    """FLTrust's server update: the gradient on a clean root set of ``size`` examples (the paper's 100)
    drawn from the clients' data, at the same weight ``w``."""
    x = problem.shards.reshape(-1, problem.shards.shape[-1])
    y = problem.labels.reshape(-1, problem.labels.shape[-1])
    idx = torch.randperm(x.shape[0], generator=generator)[:size]
    return _logreg_grad(problem.w, x[idx], y[idx]).reshape(-1)


def honest_spread(honest: Tensor) -> float:
    """``(1/h) sum_i ||g_i - mean||``: the mean distance of the honest messages to their mean."""
    return float(torch.linalg.vector_norm(honest - honest.mean(dim=0), dim=1).mean())


def default_rules() -> list[str]:
    """Every registered aggregator that maps ``[n, d]`` to ``[d]`` (pre-aggregators excluded)."""
    names = []
    for name in AGGREGATORS.primary_names():
        factory = AGGREGATORS[name]
        if isinstance(factory, type) and issubclass(factory, PreAggregator):
            continue
        names.append(name)
    return names


def default_attacks() -> list[str]:
    """Every registered message attack."""
    return ATTACKS.primary_names()


def build_rule(name: str, f: int) -> Aggregator:
    """``name`` with ``f`` where it takes one and the :data:`RULE_OVERRIDES`."""
    factory = AGGREGATORS[name]
    params = dict(RULE_OVERRIDES.get(name, {}))
    if "f" in inspect.signature(factory).parameters:
        params["f"] = f
    return AGGREGATORS.get(name, **params)


def build_attack(name: str, rule: Aggregator) -> Attack:
    """``name`` with its defaults; the line-search attacks optimise against ``rule``."""
    factory = ATTACKS[name]
    if isinstance(factory, type) and issubclass(factory, _OptimalFactor):
        return ATTACKS.get(name, agg=rule)
    return ATTACKS.get(name)


@dataclass
class MatrixResult:
    """``errors[i, j]``: median relative error of ``rules[i]`` under ``attacks[j]``. Rules that could
    not be measured are left out of ``rules`` and listed in ``notes`` with the reason."""

    rules: list[str]
    attacks: list[str]
    errors: np.ndarray
    n: int
    f: int
    rounds: int
    spread: float
    notes: dict[str, str] = field(default_factory=dict)


def _warm(rule: Aggregator, previous: Tensor) -> None:
    """Give centered clipping the state a previous clean round leaves (seed 002: the centre is the
    previous aggregate): centre = that round's honest mean, ``tau`` = its honest spread."""
    if isinstance(rule, CenteredClipping):
        rule.m = previous.mean(dim=0)
        rule.tau = honest_spread(previous)
        rule.reset()


def run_attack_matrix(
    *,
    quick: bool = False,
    seed: int = 0,
    n_clients: int | None = None,
    byz_fraction: float = 0.2,
    rules: Sequence[str] | None = None,
    attacks: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> MatrixResult:
    """Measure every rule against every attack (see the module docstring). ``quick``: one round at a
    less trained point with 15 clients (seconds; subset-based rules such as SMEA cost C(n, f) per
    call); otherwise 5 rounds with 20 clients. ``n_clients`` overrides the number of clients."""
    if n_clients is None:
        n_clients = 15 if quick else 20
    if not 0 < byz_fraction < 0.5:
        raise ValueError(f"byz_fraction must lie in (0, 0.5), got {byz_fraction}")
    if n_clients < 5:
        raise ValueError(f"n_clients must be >= 5, got {n_clients}")
    f = max(1, round(byz_fraction * n_clients))
    h = n_clients - f
    rounds = 1 if quick else 5
    problem = GradientProblem.build(n_clients, seed, warm_steps=20 if quick else 100)
    rule_names = list(rules) if rules is not None else default_rules()
    attack_names = list(attacks) if attacks is not None else default_attacks()
    draws = [problem.gradients(make_generator(seed, "matrix", "round", r)) for r in range(rounds + 1)]
    errors = np.full((len(rule_names), len(attack_names)), np.nan)
    notes: dict[str, str] = {}
    for i, rule_name in enumerate(rule_names):
        if progress is not None:
            progress(rule_name)
        if rule_name in NOT_MEAN_ESTIMATES:
            notes[rule_name] = NOT_MEAN_ESTIMATES[rule_name]
            continue
        try:
            template = build_rule(rule_name, f)
            template.check_n(n_clients)
        except ValueError as reason:
            notes[rule_name] = str(reason)
            continue
        for j, attack_name in enumerate(attack_names):
            per_round = []
            for r in range(rounds):
                grads = draws[r + 1]
                honest, own = grads[:h], grads[h:]
                rule = copy.deepcopy(template)
                _warm(rule, draws[r][:h])
                if isinstance(rule, ReferenceRule):  # FLTrust: the server's update on its root data
                    rule.set_reference(root_gradient(problem, make_generator(seed, "matrix", "root", r)))
                attack = build_attack(attack_name, rule)
                byz = attack(honest, f, rng=make_generator(seed, "matrix", "attack", r), round=r, own=own)
                out = rule(torch.cat([honest, byz]))
                dist = float(torch.linalg.vector_norm(out - honest.mean(dim=0)))
                per_round.append(dist / honest_spread(honest) if math.isfinite(dist) else math.inf)
            errors[i, j] = float(np.median(per_round))
    spread = float(np.mean([honest_spread(g[:h]) for g in draws[1:]]))
    measured = [i for i, name in enumerate(rule_names) if name not in notes]
    return MatrixResult(
        [rule_names[i] for i in measured], attack_names, errors[measured], n_clients, f, rounds, spread, notes
    )


def format_error(value: float) -> str:
    """``0.31``, ``2.4e+04``, ``inf`` or ``n/a`` (NaN: rule not applicable)."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.2f}" if value < 100 else f"{value:.1e}"


def render_table(result: MatrixResult) -> Any:
    """A ``rich`` table: rules as rows, attacks as columns; errors >= 1 in red."""
    from rich.table import Table

    table = Table(
        title=f"||agg - honest mean|| / honest spread   (n={result.n}, f={result.f}, "
        f"median of {result.rounds} round(s), logistic regression on MNIST)"
    )
    table.add_column("aggregator")
    for name in result.attacks:
        table.add_column(name, justify="right")
    for name, row in zip(result.rules, result.errors, strict=True):
        cells = []
        for v in row:
            text = format_error(float(v))
            cells.append(f"[red]{text}[/red]" if not math.isnan(v) and v >= 1 else text)
        table.add_row(name, *cells)
    return table


def save_heatmap(result: MatrixResult, path: Path) -> Path:
    """Save the error matrix as a log-colour heatmap PNG (inf shown at the top of the scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    errs = result.errors.copy()
    finite = errs[np.isfinite(errs)]
    # a log scale symmetric about 1 (green: within the honest spread, red: broken); inf at the top
    hi = max(float(finite.max()) if finite.size else 10.0, 10.0) * 10
    lo = 1.0 / hi
    shown = np.where(np.isinf(errs), hi, np.clip(errs, lo, hi))
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(result.attacks), 1.2 + 0.45 * len(result.rules)))
    im = ax.imshow(
        np.ma.masked_invalid(shown), cmap="RdYlGn_r", norm=LogNorm(vmin=lo, vmax=hi), aspect="auto"
    )
    ax.set_xticks(range(len(result.attacks)), result.attacks, rotation=45, ha="right")
    ax.set_yticks(range(len(result.rules)), result.rules)
    for i in range(len(result.rules)):
        for j in range(len(result.attacks)):
            v = float(errs[i, j])
            # white text on the saturated ends of the colour map
            dark = math.isinf(v) or abs(math.log10(min(max(v, lo), hi))) > 0.6 * math.log10(hi)
            ax.text(
                j,
                i,
                format_error(v),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
    fig.colorbar(im, ax=ax, label="error / honest spread")
    ax.set_title(f"Attack matrix: n={result.n}, f={result.f} (logistic regression, embedded MNIST)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
