"""FoolsGold: sybils with agreeing histories get weight 0; the history is explicit state."""

import math

import numpy as np
import pytest
import torch

from robustfl.aggregators import FoolsGold
from robustfl.aggregators.foolsgold import foolsgold_weights


def algorithm_1(history: np.ndarray, kappa: float = 1.0) -> np.ndarray:
    """Fung et al.'s Algorithm 1, written out with loops over clients."""
    n = history.shape[0]
    unit = history / np.linalg.norm(history, axis=1, keepdims=True)
    cs = unit @ unit.T - np.eye(n)
    v = cs.max(axis=1)
    for i in range(n):
        for j in range(n):
            if i != j and v[j] > v[i]:
                cs[i, j] *= v[i] / v[j]
    alpha = np.clip(1 - cs.max(axis=1), 0, 1)
    alpha = alpha / alpha.max()
    alpha[alpha == 1] = 0.99
    out = []
    for a in alpha:
        w = kappa * (math.log(a / (1 - a)) + 0.5) if a > 0 else -math.inf
        out.append(min(max(w, 0.0), 1.0))
    return np.array(out)


def rounds(seed: int, t: int = 3) -> list[torch.Tensor]:
    """10 honest clients with their own directions plus 4 sybils sending one shared direction."""
    g = torch.Generator().manual_seed(seed)
    own = torch.randn(10, 200, generator=g, dtype=torch.float64)
    target = torch.randn(200, generator=g, dtype=torch.float64)
    out = []
    for _ in range(t):
        honest = own + 0.5 * torch.randn(10, 200, generator=g, dtype=torch.float64)
        sybils = target + 0.01 * torch.randn(4, 200, generator=g, dtype=torch.float64)
        out.append(torch.cat([honest, sybils]))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_weights_match_algorithm_1(seed: int) -> None:
    h = torch.randn(8, 30, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    h[5:] = h[5] + 0.1 * h[5:]  # a few similar clients so pardoning and clipping matter
    assert np.allclose(foolsgold_weights(h).numpy(), algorithm_1(h.numpy()), atol=1e-9)
    assert np.allclose(foolsgold_weights(h, 0.5).numpy(), algorithm_1(h.numpy(), 0.5), atol=1e-9)


def test_sybils_get_zero_weight_and_honest_rows_are_averaged() -> None:
    rule = FoolsGold()
    history = torch.zeros(14, 200, dtype=torch.float64)
    for x in rounds(0):
        out = rule(x)
        history += x
    alpha = foolsgold_weights(history)
    assert (alpha[10:] == 0).all() and (alpha[:10] > 0.5).all()
    assert torch.allclose(out, (alpha @ x) / alpha.sum())
    assert torch.allclose(rule.state_dict()["history"], history)


def test_state_round_trip_and_reset() -> None:
    xs = rounds(1)
    a = FoolsGold()
    a(xs[0])
    b = FoolsGold()
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(xs[1]), b(xs[1]))
    a.reset()
    assert a.state_dict() == {"history": None}
    assert torch.equal(a(xs[2]), FoolsGold()(xs[2]))
    with pytest.raises(ValueError, match="call reset"):
        b(xs[0][:, :50])
    with pytest.raises(ValueError, match="Tensor"):
        b.load_state_dict({"history": torch.zeros(3)})


def test_model_weights_with_distinct_directions_still_separate_sybils() -> None:
    # rows sharing a large common part in float32: cosines within 1e-6 of 1, still resolved
    x = rounds(2, t=1)[0]
    common = 1e3 * torch.randn(200, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    alpha32 = foolsgold_weights((x + common).float())
    assert torch.allclose(alpha32, foolsgold_weights(x + common), atol=1e-4)


def test_validation_and_non_finite_rows() -> None:
    with pytest.raises(ValueError, match=r"n >= 2"):
        FoolsGold()(torch.ones(1, 3))
    with pytest.raises(ValueError, match="kappa must be > 0"):
        FoolsGold(kappa=0)
    x = rounds(3, t=1)[0]
    x[0] = float("nan")
    assert torch.isfinite(FoolsGold()(x)).all()


def test_histories_follow_client_ids_under_sampling() -> None:
    """Rows given in any order, by any subset of clients, add to their own clients' histories."""
    xs = rounds(2)
    fixed, sampled = FoolsGold(), FoolsGold()
    fixed(xs[0])
    perm = torch.randperm(14, generator=torch.Generator().manual_seed(0))
    half = perm[:7]
    sampled.set_clients(half)
    sampled(xs[0][half])
    sampled.set_clients(perm[7:])
    sampled(xs[0][perm[7:]])
    assert torch.allclose(sampled.state_dict()["history"], fixed.state_dict()["history"], atol=1e-12)
    # the same round seen by everyone, rows shuffled: the output is the same weighted mean
    sampled.set_clients(perm)
    assert torch.allclose(sampled(xs[1][perm]), fixed(xs[1]), atol=1e-12)
    with pytest.raises(ValueError, match="3 client ids for 14 rows"):
        sampled.set_clients(torch.arange(3))
        sampled(xs[2])
    with pytest.raises(ValueError, match="distinct"):
        sampled.set_clients(torch.tensor([1, 1]))


def test_pipeline_hands_client_ids_to_foolsgold() -> None:
    from robustfl.aggregators import Clipping, Pipeline

    rule = Pipeline(Clipping(c=100.0), FoolsGold())
    assert rule.tracks_clients
    rule.set_clients(torch.tensor([5, 3]))
    rule(torch.randn(2, 10, dtype=torch.float64))
    assert rule.state_dict()["stages"][1]["history"].shape == (6, 10)
