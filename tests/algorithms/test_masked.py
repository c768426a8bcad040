"""Masked / alternating partial training (AC/DC-style): schedule, mask, q, bits, equalities, convergence."""

import math
import sys
from pathlib import Path

import pytest
import torch
from fl_rounds import quad_grad, run_rounds
from torch import Tensor

from robustfl import algorithms
from robustfl.aggregators import Average, Median
from robustfl.algorithms import ClientOptimizer, Cohort, FedAvg, MaskedTraining
from robustfl.algorithms.masked import MASK

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from tiny_task import make_simulator, tiny_cnn


def test_registered_under_its_names() -> None:
    for name in ("masked", "acdc", "partial"):
        assert isinstance(algorithms.get(name), MaskedTraining)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"density": 0.0}, "density"),
        ({"density": 1.5}, "density"),
        ({"density": True}, "density"),
        ({"masked_rounds": 0, "dense_rounds": 0}, "masked_rounds \\+ dense_rounds"),
        ({"masked_rounds": -1}, "masked_rounds"),
        ({"prune": "yes"}, "prune"),
        ({"shapes": [(0, 2)]}, "shape"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MaskedTraining(**kwargs)


def test_shapes_must_cover_the_model() -> None:
    with pytest.raises(ValueError, match="shapes describe 6 parameters but the model has d = 7"):
        MaskedTraining(shapes=[(2, 3)]).core_mask(torch.zeros(7))


def test_schedule_warmup_then_masked_and_dense_phases() -> None:
    alg = MaskedTraining(warmup_rounds=2, masked_rounds=3, dense_rounds=2)
    assert [alg.is_masked(t) for t in range(10)] == [
        False,
        False,
        True,
        True,
        True,
        False,
        False,
        True,
        True,
        True,
    ]
    # the mask follows the model in dense rounds and at each masked phase's start, frozen inside it
    assert [alg.refreshes(t) for t in range(10)] == [
        True,
        True,
        True,
        False,
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    assert all(MaskedTraining(masked_rounds=0).is_masked(t) is False for t in range(5))


def test_mask_keeps_the_largest_magnitudes_of_each_layer_and_every_bias() -> None:
    # layers: weight [2, 3], bias [3], weight [2, 2]; density 0.5 keeps ceil(3) and ceil(2) weights
    w1 = torch.tensor([0.1, -5.0, 0.3, 2.0, -0.2, 0.05])
    b1 = torch.tensor([0.0, 0.0, 1e-9])
    w2 = torch.tensor([1.0, -1.0, 0.5, -3.0])
    alg = MaskedTraining(density=0.5, shapes=[(2, 3), (3,), (2, 2)])
    mask = alg.core_mask(torch.cat([w1, b1, w2]))
    expect_w1 = [False, True, True, True, False, False]  # |-5|, |2|, |0.3|
    expect_w2 = [True, False, False, True]  # |-3|, then the tie |1| = |-1| goes to the lower index
    assert mask.tolist() == expect_w1 + [True] * 3 + expect_w2
    # one layer without shapes; density 1 keeps everything
    flat = MaskedTraining(density=0.25).core_mask(torch.tensor([3.0, -4.0, 1.0, 0.5, 2.0, -0.1, 0.0, 1.5]))
    assert flat.tolist() == [True, True, False, False, False, False, False, False]
    assert bool(MaskedTraining(density=1.0).core_mask(torch.randn(9)).all())


def test_server_refreshes_the_mask_from_its_model_at_each_masked_phase_start() -> None:
    alg = MaskedTraining(density=0.5, masked_rounds=2, dense_rounds=1)  # rounds: M M D M M D ...
    params = torch.tensor([4.0, 3.0, 0.1, 0.2])
    state = alg.init_server_state(params)
    assert state[MASK].tolist() == [True, True, False, False]
    cohort = Cohort.of(1)

    def step(params: Tensor, state: dict, r: int, msg: list[float]) -> tuple[Tensor, dict]:
        out = alg.server_step(params, torch.tensor([msg]), Average(), state, 1.0, r, cohort)
        return out.params, out.state

    # round 0 (masked): the off-core coordinates do not move; round 1 is inside the phase: mask frozen
    params, state = step(params, state, 0, [4.5, 0.0, -9.0, -9.0])
    torch.testing.assert_close(params, torch.tensor([-0.5, 3.0, 0.1, 0.2]))
    assert state[MASK].tolist() == [True, True, False, False]
    # round 1 (masked): next is the dense round 2, whose mask is the top-2 of the new model
    params, state = step(params, state, 1, [0.0, 3.0, 0.0, 0.0])
    torch.testing.assert_close(params, torch.tensor([-0.5, 0.0, 0.1, 0.2]))
    assert state[MASK].tolist() == [True, False, False, True]
    # round 2 (dense): everything moves; round 3 starts a masked phase: refreshed from the new model
    params, state = step(params, state, 2, [0.5, 0.0, -5.0, 0.0])
    torch.testing.assert_close(params, torch.tensor([-1.0, 0.0, 5.1, 0.2]))
    assert state[MASK].tolist() == [True, False, True, False]


def test_prune_zeroes_the_off_core_weights_after_a_masked_round() -> None:
    alg = MaskedTraining(density=0.5, masked_rounds=1, dense_rounds=1, prune=True)
    params = torch.tensor([4.0, 3.0, 0.1, 0.2])
    out = alg.server_step(
        params, torch.ones(1, 4), Average(), alg.init_server_state(params), 1.0, 0, Cohort.of(1)
    )
    assert out.params.tolist() == [3.0, 2.0, 0.0, 0.0]


def test_masked_client_step_trains_the_core_by_hand() -> None:
    """Two local steps on f(y) = 1/2 ||y - t||^2 from y_0 = x (.) m, gradients restricted to m."""
    alg, lr = MaskedTraining(local_steps=2, track_alignment=False), 0.1
    x, t = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 1.0, 1.0])
    mask = torch.tensor([True, False, True])
    shared = {"params": x, "mask": mask, "masked": torch.tensor(True)}
    xs, ys = t.expand(2, 4, 3).clone(), torch.zeros(2, 4)
    msg, _, loss, metrics = alg.client_step(shared, xs, ys, {}, lr, quad_grad)
    y = torch.tensor([2.0, 0.0, 0.5])
    for _ in range(2):
        y = y - lr * torch.tensor([1.0, 0.0, 1.0]) * (y - t)
    torch.testing.assert_close(msg, torch.tensor([2.0 - y[0], 0.0, 0.5 - y[2]]))
    torch.testing.assert_close(loss, 0.5 * torch.tensor(1.0 + 1.0 + 0.25))  # at x (.) m
    assert metrics == {}
    # a dense round is FedAvg
    dense = {**shared, "masked": torch.tensor(False)}
    plain = FedAvg(local_steps=2).client_step({"params": x}, xs, ys, {}, lr, quad_grad)
    assert torch.equal(alg.client_step(dense, xs, ys, {}, lr, quad_grad).message, plain.message)


def linear_grad(w: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Least squares ``1/(2B) ||X w - y||^2`` (labels carry the targets)."""
    r = x @ w - y
    return x.T @ r / len(y), 0.5 * (r * r).mean()


def test_q_matches_a_hand_computation_on_a_linear_model() -> None:
    w = torch.tensor([1.0, 0.1, -2.0])
    alg = MaskedTraining(density=0.6)  # one layer: keeps ceil(1.8) = 2, |1| and |-2|
    mask = alg.core_mask(w)
    assert mask.tolist() == [True, False, True]
    xb = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])
    yb = torch.tensor([1.0, -1.0])
    # by hand: X w = [1.2, -1.9], residual [0.2, -0.9], g = X^T r / 2 = [0.1, -0.25, -0.45]
    # core: X (w (.) m) = [1, -2], residual [0, -1], X^T r / 2 = [0, -0.5, -0.5], masked: [0, 0, -0.5]
    g, partial = torch.tensor([0.1, -0.25, -0.45]), torch.tensor([0.0, 0.0, -0.5])
    inner, g2 = 0.225, 0.01 + 0.0625 + 0.2025
    for masked in (True, False):  # the same q whichever gradient the round trains with
        shared = {"params": w, "mask": mask, "masked": torch.tensor(masked)}
        out = alg.client_step(shared, xb[None], yb[None], {}, 0.1, linear_grad)
        torch.testing.assert_close(out.metrics["alignment"], torch.tensor(inner / g2))
        torch.testing.assert_close(out.metrics["grad_cosine"], torch.tensor(inner / math.sqrt(g2 * 0.25)))
    torch.testing.assert_close(linear_grad(w, xb, yb)[0], g)
    torch.testing.assert_close(torch.where(mask, linear_grad(w * mask, xb, yb)[0], 0.0), partial)
    # a partial gradient can point uphill (no finite q)
    # (w = [1, 1], x = [1, 1], y = 1.5: the parent's residual is +0.5, the core's -0.5)
    shared = {
        "params": torch.tensor([1.0, 1.0]),
        "mask": torch.tensor([True, False]),
        "masked": torch.tensor(True),
    }
    out = alg.client_step(shared, torch.tensor([[[1.0, 1.0]]]), torch.tensor([[1.5]]), {}, 0.1, linear_grad)
    assert float(out.metrics["alignment"]) < 0


@pytest.mark.parametrize("vectorise", [True, False])
def test_full_mask_equals_fedavg_bit_for_bit_and_alignment_is_one(vectorise: bool) -> None:
    recipe = ClientOptimizer(momentum=0.5, weight_decay=1e-3)
    masked = MaskedTraining(
        density=1.0, masked_rounds=2, dense_rounds=1, local_steps=2, client_optimizer=recipe
    )
    a = make_simulator(algorithm=masked, vectorise=vectorise, per_round=6)
    b = make_simulator(
        algorithm=FedAvg(local_steps=2, client_optimizer=recipe), vectorise=vectorise, per_round=6
    )
    for _ in range(4):
        sa, sb = a.step(), b.step()
        assert sa.metrics["alignment"] == 1.0 and sa.metrics["grad_cosine"] == pytest.approx(1.0)
        assert sa.bits_up == sb.bits_up
    assert torch.equal(a.params, b.params)
    ev = a.evaluate()
    assert ev["core_test_accuracy"] == ev["test_accuracy"] == b.evaluate()["test_accuracy"]


def test_bits_count_the_support_and_the_bitmap_in_masked_rounds() -> None:
    sim = make_simulator(algorithm=MaskedTraining(density=0.3, masked_rounds=1, dense_rounds=1), per_round=5)
    d = sim.params.numel()
    k = int(sim.server_state[MASK].sum())
    assert k < d
    masked, dense = sim.step(), sim.step()
    assert masked.metrics["masked_round"] == 1.0 and dense.metrics["masked_round"] == 0.0
    assert (masked.bits_up, masked.bits_down) == (5 * 32 * k, 5 * (32 * d + d))
    assert (dense.bits_up, dense.bits_down) == (5 * 32 * d, 5 * 32 * d)


@pytest.mark.parametrize("kind", ["topk", "qsgd"])
def test_a_compressor_encodes_only_the_support_in_masked_rounds(kind: str) -> None:
    from robustfl import compressors as C

    comp = C.TopK(k=4) if kind == "topk" else C.QSGD(s=4, coding="fixed")

    def cost(width: int) -> int:  # the compressors' documented bits per sender for a width-wide row
        if kind == "topk":
            return 4 * (math.ceil(math.log2(width)) + 32)
        return 32 + width * (1 + math.ceil(math.log2(4 + 1)))

    alg = MaskedTraining(density=0.3, masked_rounds=1, dense_rounds=1)
    sim = make_simulator(algorithm=alg, compressor=comp, per_round=5)
    d, k = sim.params.numel(), int(sim.server_state[MASK].sum())
    assert k < d
    masked, dense = sim.step(), sim.step()
    assert masked.metrics["masked_round"] == 1.0 and dense.metrics["masked_round"] == 0.0
    assert masked.bits_up == 5 * cost(k)
    assert dense.bits_up == 5 * cost(d)


def test_dense_rounds_and_a_full_mask_with_error_feedback_equal_fedavg_bit_for_bit() -> None:
    from robustfl import compressors as C

    runs = [
        make_simulator(algorithm=alg, compressor=C.ErrorFeedback(C.TopK(ratio=0.2)), per_round=6)
        for alg in (
            FedAvg(local_steps=2),
            MaskedTraining(density=1.0, masked_rounds=2, dense_rounds=1, local_steps=2),
            MaskedTraining(density=0.3, masked_rounds=0, dense_rounds=1, local_steps=2),
        )
    ]
    for _ in range(3):
        bits = {run.step().bits_up for run in runs}
        assert len(bits) == 1
    assert all(torch.equal(run.params, runs[0].params) for run in runs[1:])


def test_error_feedback_memory_off_the_core_waits_through_masked_rounds_and_mask_changes() -> None:
    from robustfl import compressors as C
    from robustfl.compressors.error_feedback import MEMORY
    from robustfl.engine.phases import COMPRESSOR_STATE

    alg = MaskedTraining(density=0.3, masked_rounds=1, dense_rounds=1)  # M D M D: a new mask each phase
    sim = make_simulator(algorithm=alg, compressor=C.ErrorFeedback(C.TopK(ratio=0.2)))
    key = f"{COMPRESSOR_STATE}.update.{MEMORY}"
    masks = []
    for _ in range(4):
        masked = alg.is_masked(sim.round)
        mask = sim.server_state[MASK].clone()
        before = sim.client_state.get(key, torch.zeros(1)).clone()
        sim.step()
        memory = sim.client_state[key]
        assert memory.shape == (10, sim.params.numel())
        if masked:
            masks.append(mask)
            if before.shape == memory.shape:  # the state exists from the first message on
                assert torch.equal(memory[:, ~mask], before[:, ~mask])
            else:
                assert not bool(memory[:, ~mask].any())
        assert bool(torch.isfinite(sim.params).all())
    assert not torch.equal(masks[0], masks[1])


def test_simulator_reports_core_accuracy_and_q_and_paths_agree() -> None:
    alg = MaskedTraining(density=0.3, masked_rounds=2, dense_rounds=2, prune=True)
    loop, vmap = make_simulator(algorithm=alg, vectorise=False), make_simulator(algorithm=alg, vectorise=True)
    for _ in range(3):
        s = loop.step()
        vmap.step()
        assert math.isfinite(s.metrics["alignment"]) and -1 <= s.metrics["grad_cosine"] <= 1
    torch.testing.assert_close(loop.params, vmap.params)
    ev = loop.evaluate()
    assert {"core_test_accuracy", "core_test_loss", "test_accuracy"} <= set(ev)
    # after the masked rounds 0-1 and the dense round 2 the pruned weights have regrown
    assert ev["core_test_loss"] != ev["test_loss"]


def test_resume_continues_identically() -> None:
    alg = MaskedTraining(density=0.3, masked_rounds=2, dense_rounds=1)
    whole = make_simulator(algorithm=alg)
    for _ in range(5):
        whole.step()
    first = make_simulator(algorithm=alg)
    for _ in range(2):
        first.step()
    again = make_simulator(algorithm=alg)
    again.load_state_dict(first.state_dict())
    for _ in range(3):
        again.step()
    assert torch.equal(again.params, whole.params)
    assert torch.equal(again.server_state[MASK], whole.server_state[MASK])


TARGETS = torch.tensor([[3.0, -1.0, 0.0, 0.0], [1.0, -5.0, 0.0, 0.0], [2.0, -3.0, 0.0, 0.0]])
OPTIMUM = TARGETS.mean(0)  # [2, -3, 0, 0]: supported on the first two coordinates


@pytest.mark.parametrize(("dense_rounds", "prune"), [(1, False), (1, True), (0, True)])
def test_converges_when_the_mask_covers_the_optimum_support(dense_rounds: int, prune: bool) -> None:
    alg = MaskedTraining(density=0.5, masked_rounds=3, dense_rounds=dense_rounds, prune=prune, local_steps=2)
    start = torch.tensor([0.5, -0.5, 0.3, -0.2])  # its top-2 is the optimum's support
    params, _, server = run_rounds(alg, TARGETS, rounds=60, lr=0.3, params=start)
    assert server[MASK].tolist() == [True, True, False, False]
    assert torch.linalg.vector_norm(params - OPTIMUM) < 1e-3
    assert torch.linalg.vector_norm(torch.where(server[MASK], params, 0.0) - OPTIMUM) < 1e-3


def test_masked_rounds_ignore_what_byzantine_clients_send_off_the_core() -> None:
    alg = MaskedTraining(density=0.5, masked_rounds=1, dense_rounds=0)
    start = torch.tensor([0.5, -0.5, 0.3, -0.2])

    def attack(part: str, rows: Tensor) -> Tensor:
        return torch.full_like(rows, 1e6)

    params, _, _ = run_rounds(
        alg, TARGETS, rounds=3, lr=0.3, params=start, aggregator=Median(), f=1, attack=attack
    )
    assert params[2:].tolist() == start[2:].tolist()
    assert bool(torch.isfinite(params).all()) and float(params.abs().max()) < 10


def test_packaged_config_fills_the_layout_and_reports_core_accuracy() -> None:
    import robustfl
    from robustfl.experiment.build import build_run
    from robustfl.experiment.config import load_config

    config = Path(robustfl.__file__).parent / "configs" / "masked.toml"
    short = ["algorithm.params.warmup_rounds=1", "algorithm.params.local_steps=1", "workers.n=3"]
    run = build_run(load_config(config, short))
    alg = run.sim.algorithm
    assert isinstance(alg, MaskedTraining) and alg.shapes == [
        (200, 784),
        (200,),
        (200, 200),
        (200,),
        (10, 200),
        (10,),
    ]
    assert [run.step().metrics["masked_round"] for _ in range(2)] == [0.0, 1.0]
    assert {"test_accuracy", "core_test_accuracy"} <= set(run.evaluate())


@pytest.mark.parametrize("compressor", ["top-k+ef", "powersgd"])
def test_runs_with_compressors_robust_rules_and_attacks_and_freezes_the_off_core(compressor: str) -> None:
    from robustfl import compressors as C
    from robustfl.attacks import SignFlipping
    from robustfl.layout import ParameterLayout

    model = tiny_cnn()
    shapes = ParameterLayout.of(model).shapes
    # top-k keeps 30% of the K = 148 support values in masked rounds (10% would leave the coordinate-wise
    # median of 10 sparse rows at zero nearly everywhere)
    comp = (
        C.ErrorFeedback(C.TopK(ratio=0.3)) if compressor == "top-k+ef" else C.PowerSGD(rank=1, shapes=shapes)
    )
    alg = MaskedTraining(density=0.3, masked_rounds=2, dense_rounds=1, shapes=shapes, local_steps=2)
    sim = make_simulator(
        model=model,
        algorithm=alg,
        aggregator=Median(),
        compressor=comp,
        num_byzantine=2,
        attack=SignFlipping(),
    )
    for _ in range(3):
        before, mask = sim.params.clone(), sim.server_state[MASK].clone()
        stats = sim.step()
        if stats.metrics["masked_round"]:
            assert torch.equal(sim.params[~mask], before[~mask])
        assert not torch.equal(sim.params[mask], before[mask])
    assert bool(torch.isfinite(sim.params).all())
