"""End to end on a least-squares model, following the integration contract of docs/coding.md: the
same minibatch split into P partitions, partition gradients per worker, encode, Byzantine rows from
robustfl's attacks (adversaries re-drawn every round, as in DRACO's experiments), decode, SGD step."""

import pytest
import torch

from robustfl import attacks, coding
from robustfl.coding import CodedScheme


def train(scheme: CodedScheme, attack: str | None, rounds: int = 15) -> torch.Tensor:
    P, d, per_part = scheme.workers, 6, 4
    data = torch.Generator().manual_seed(0)
    w_true = torch.randn(d, generator=data, dtype=torch.float64)
    w = torch.zeros(d, dtype=torch.float64)
    adv_rng = torch.Generator().manual_seed(1)
    s = getattr(scheme, "s", 0)
    assignment = torch.tensor(scheme.assignment())
    for t in range(rounds):
        X = torch.randn(P, per_part, d, generator=data, dtype=torch.float64)
        y = X @ w_true
        parts = torch.einsum("pbd,pb->pd", X, X @ w - y) * (2 / per_part)  # partition gradients
        msg = scheme.encode_all(parts[assignment])
        if attack is not None and s > 0:
            bad = torch.randperm(P, generator=adv_rng)[:s]
            good = torch.ones(P, dtype=torch.bool)
            good[bad] = False
            msg[bad] = attacks.get(attack)(msg[good], s, rng=adv_rng, round=t)
        w = w - 0.05 * scheme.decode(msg, torch.Generator().manual_seed(t))
    return w


@pytest.mark.parametrize("attack", ["alie", "sign-flip", "constant", "nan", "gaussian"])
def test_repetition_trains_the_attack_free_model_bit_for_bit(attack: str) -> None:
    scheme = coding.get("draco-repetition", workers=10, s=2)
    assert torch.equal(train(scheme, attack), train(scheme, None))


@pytest.mark.parametrize("attack", ["alie", "sign-flip", "constant", "nan", "gaussian"])
def test_cyclic_trains_the_attack_free_model_to_rounding(attack: str) -> None:
    scheme = coding.get("draco-cyclic", workers=11, s=3)
    torch.testing.assert_close(train(scheme, attack), train(scheme, None), rtol=1e-10, atol=1e-10)


def test_coded_runs_match_plain_sgd_on_the_same_minibatches() -> None:
    plain = train(coding.get("draco-repetition", workers=10, s=0), None)
    for scheme in (
        coding.get("draco-repetition", workers=10, s=2),
        coding.get("draco-cyclic", workers=10, s=2),
    ):
        torch.testing.assert_close(train(scheme, None), plain, rtol=1e-10, atol=1e-10)
