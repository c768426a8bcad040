"""SCAFFOLD in the simulator against Karimireddy et al. (ICML 2020), Algorithm 1, with client sampling.

Every quantity is read back from the simulator's own state: the cohort of a round (``sim.plan``), the
global ``x`` and ``c`` before and after, every client's ``c_i``. Option II gives
``c_i+ - c_i = -c + (x - y_i) / (K lr)``, so a sampled client's ``x - y_i`` is ``K lr (Δc_i + c)`` and
Algorithm 1's server step can be checked exactly:

    x+ = x - η_g mean_S (x - y_i)          c+ = c + (|S| / N) mean_S Δc_i
    c_j unchanged for every j not in S      and, from zero, c = mean over all N clients of c_j.
"""

import sys
from pathlib import Path

import pytest
import torch

from robustfl.aggregators import Average, Median
from robustfl.algorithms import Scaffold
from robustfl.attacks import SignFlipping
from robustfl.engine import Simulator

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from tiny_task import split, tiny_cnn, tiny_data

N, M, K, LR, SERVER_LR = 6, 3, 3, 0.05, 0.7


def simulator(vectorise: bool, **kw: object) -> Simulator:
    alg = Scaffold(local_steps=K, server_lr=SERVER_LR, client_fraction=M / N)
    return Simulator(
        tiny_cnn(), tiny_data(), split(N), alg, kw.pop("aggregator", Average()),  # type: ignore[arg-type]
        per_round=M, batch_size=8, lr=LR, seed=3, vectorise=vectorise, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize("vectorise", [True, False], ids=["vmap", "loop"])
def test_scaffold_rounds_follow_algorithm_1_with_sampling(vectorise: bool) -> None:
    sim = simulator(vectorise)
    seen: set[int] = set()
    for r in range(4):
        ids = sim.plan(r).ids
        x, c = sim.params.clone(), sim.server_state["control"].clone()
        ci = sim.client_state["control"].clone()
        sim.step()
        new_ci = sim.client_state["control"]
        out = torch.ones(N, dtype=torch.bool)
        out[ids] = False
        assert torch.equal(new_ci[out], ci[out])  # clients not sampled keep their variates
        dc = new_ci[ids] - ci[ids]
        dy = K * LR * (dc + c)  # x - y_i of each sampled client, from option II
        torch.testing.assert_close(sim.params, x - SERVER_LR * dy.mean(0), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(
            sim.server_state["control"], c + (M / N) * dc.mean(0), atol=1e-6, rtol=1e-5
        )
        # with c and every c_i starting at zero: c stays the mean of all N client variates
        torch.testing.assert_close(sim.server_state["control"], new_ci.mean(0), atol=1e-6, rtol=1e-5)
        seen |= set(ids.tolist())
    assert len(seen) > M  # sampling did vary the cohort


def test_scaffold_byzantine_control_part_goes_through_the_rule() -> None:
    """A Byzantine client's Δc is what the rule sees: the mean takes its flipped row, the median
    of three with one flipped row does not move further than the honest rows' span."""
    sim = simulator(True, aggregator=Median(), num_byzantine=1, attack=SignFlipping())
    attacked = 0
    for r in range(4):
        ids, byz = sim.plan(r).ids, sim.plan(r).byzantine
        c = sim.server_state["control"].clone()
        ci = sim.client_state["control"].clone()
        sim.step()
        dc = sim.client_state["control"][ids] - ci[ids]  # the true Δc_i (state keeps the honest value)
        honest = dc[~byz]
        step = (sim.server_state["control"] - c) / (M / N)
        lo, hi = honest.min(0).values, honest.max(0).values
        if bool(byz.any()):
            attacked += 1
            assert bool(((step >= lo - 1e-6) & (step <= hi + 1e-6)).all())
        else:
            torch.testing.assert_close(step, dc.median(0).values)
    assert attacked > 0  # the Byzantine client was sampled at least once
