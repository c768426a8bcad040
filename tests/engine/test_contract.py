"""Engine v2: per-client streams, client sampling, Byzantine schedules, named parts, resume."""

from typing import Any

import pytest
import torch
from tiny_task import make_simulator, split
from torch import Tensor

from robustfl import compressors as C
from robustfl.aggregators import Average, CenteredClipping
from robustfl.algorithms import ClientOutput, Cohort, DistributedSGD, FedAvg, GradFn, ServerOutput, State
from robustfl.attacks import SignFlipping
from robustfl.compressors.base import RowStreams
from robustfl.engine import Simulator
from robustfl.engine.participation import ByzantineSchedule, draw_cohort
from robustfl.engine.sampling import ClientSampler
from robustfl.streams import STREAMS, Streams


def make(**kw: Any) -> Simulator:
    return make_simulator(**kw)


# ------------------------------------------------------------------------------------------ streams
def test_client_streams_depend_only_on_seed_stream_client_round() -> None:
    s = Streams(7)
    a = torch.rand(5, generator=s.client("sample", 3, 12))
    s.client("sample", 4, 12)  # another client's draw in between changes nothing
    assert torch.equal(a, torch.rand(5, generator=Streams(7).client("sample", 3, 12)))
    assert not torch.equal(a, torch.rand(5, generator=s.client("sample", 3, 13)))
    assert not torch.equal(a, torch.rand(5, generator=s.client("compress", 3, 12)))
    with pytest.raises(ValueError, match="unknown random stream 'data_attack'"):
        s.client("data_attack", 0)
    assert "data-attack" in STREAMS


COMPRESSORS = [
    C.QSGD(s=4),
    C.TernGrad(),
    C.RandK(ratio=0.2),
    C.RandL(ratio=0.3),
    C.ATOMO(budget=5.0),
    C.TopK(ratio=0.1),
]


@pytest.mark.parametrize("compressor", COMPRESSORS, ids=repr)
def test_a_row_compressed_alone_with_its_stream_equals_its_batch_row(compressor: C.Compressor) -> None:
    x = torch.randn(6, 40, generator=torch.Generator().manual_seed(0))
    s = Streams(1)
    ids = [4, 9, 2, 7, 0, 5]
    batch = RowStreams(tuple(s.clients("compress", ids, 3)), s.shared("compress-shared", 3))
    whole = compressor.decompress(compressor.compress(x, batch))
    assert not compressor.batch_coupled
    for row, i in enumerate(ids):
        alone = RowStreams((s.client("compress", i, 3),), s.shared("compress-shared", 3))
        torch.testing.assert_close(
            compressor.decompress(compressor.compress(x[row : row + 1], alone))[0], whole[row]
        )


def test_block_sampling_is_declared_batch_coupled() -> None:
    assert C.BlockSampling(ratio=0.25).batch_coupled  # its coordinates follow every sender's column norms


def test_powersgd_warm_start_lives_in_row_state() -> None:
    c = C.PowerSGD(rank=1, shapes=[(5, 8)])
    x = torch.randn(3, 40, generator=torch.Generator().manual_seed(0))
    state = {k: v.unsqueeze(0).repeat(3, *[1] * v.dim()) for k, v in c.init_row_state(x[0]).items()}
    rng = RowStreams(
        tuple(Streams(0).clients("compress", [0, 1, 2], 0)), Streams(0).shared("compress-shared", 0)
    )
    _, state = c.encode(x, rng, state)
    assert bool(state["powersgd_started"].all())
    one, _ = c.encode(x[1:2], rng.take(1), {k: v[1:2] for k, v in state.items()})
    two, _ = c.encode(x, rng, state)
    torch.testing.assert_close(c.decompress(one)[0], c.decompress(two)[1])


# ------------------------------------------------------------------------------------------ sampling
def test_a_clients_batches_do_not_depend_on_who_else_is_sampled() -> None:
    parts = split(10)
    sampler = ClientSampler(parts, Streams(5))
    alone = sampler.sample(torch.tensor([6]), 4, 2, 8)[0]
    crowd = sampler.sample(torch.tensor([0, 3, 6, 9]), 4, 2, 8)[2]
    assert torch.equal(alone, crowd)
    assert set(alone.flatten().tolist()) <= set(parts[6].tolist())


def test_cohort_is_m_distinct_sorted_ids_from_the_shared_stream() -> None:
    s, sched = Streams(0), ByzantineSchedule(f=2)
    ids, byz = draw_cohort(10, 4, sched, s, 0)
    assert len(set(ids.tolist())) == 4 and torch.equal(ids, ids.sort().values)
    assert torch.equal(ids, draw_cohort(10, 4, sched, Streams(0), 0)[0])
    assert torch.equal(byz, ids >= 8)
    cohorts = {tuple(draw_cohort(10, 4, sched, s, r)[0].tolist()) for r in range(20)}
    assert len(cohorts) > 10  # a fresh draw per round


def test_sampled_clients_keep_state_and_error_feedback_memory_between_rounds() -> None:
    sim = make(per_round=3, compressor=C.ErrorFeedback(C.TopK(ratio=0.1)))
    before = {k: v.clone() for k, v in sim.client_state.items()}
    cohort = sim.plan(0)
    sim.step()
    out = (~torch.isin(torch.arange(10), cohort.ids)).nonzero().flatten()
    for key in before:
        assert torch.equal(sim.client_state[key][out], before[key][out])
        assert not torch.equal(sim.client_state[key][cohort.ids], before[key][cohort.ids])
    memory = sim.client_state["compress.update.ef_memory"]
    assert memory[out].abs().sum() == 0 and memory[cohort.ids].abs().sum() > 0


def test_cohort_too_small_for_the_rule_names_the_bound() -> None:
    from robustfl.aggregators import Krum

    with pytest.raises(ValueError, match="n=3, f=2"):
        make(per_round=3, aggregator=Krum(f=2))


# ------------------------------------------------------------------------------------- Byzantine ids
@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (ByzantineSchedule(f=2), [8, 9]),
        (ByzantineSchedule(f=2, ids=(1, 5)), [1, 5]),
    ],
)
def test_fixed_byzantine_ids(schedule: ByzantineSchedule, expected: list[int]) -> None:
    sim = make(byzantine=schedule, attack=SignFlipping())
    assert sim.step().metrics["byzantine_ids"] == expected


def test_random_ids_are_drawn_once_and_resample_draws_each_round() -> None:
    fixed = make(byzantine=ByzantineSchedule(f=3, ids="random"), attack=SignFlipping())
    seen = {tuple(fixed.step().metrics["byzantine_ids"]) for _ in range(3)}
    assert len(seen) == 1 and len(next(iter(seen))) == 3
    moving = make(byzantine=ByzantineSchedule(f=3, ids="random", resample=True), attack=SignFlipping())
    assert len({tuple(moving.step().metrics["byzantine_ids"]) for _ in range(4)}) > 1


def test_every_k_lets_the_attackers_take_part_only_every_kth_round() -> None:
    sim = make(byzantine=ByzantineSchedule(f=1, every=3), per_round=4, attack=SignFlipping())
    rounds = [sim.step().metrics for _ in range(6)]
    assert [m["byzantine_ids"] for m in rounds] == [[9], [], [], [9], [], []]
    assert all(m["clients"] == 4 for m in rounds)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(ids="first"), "ids must be 'last', 'random'"),
        (dict(ids=(1,)), "lists 1 ids but workers.f = 2"),
        (dict(resample=True), "needs byzantine.ids = 'random'"),
        (dict(every=0), "every must be >= 1"),
    ],
)
def test_bad_byzantine_schedules(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ByzantineSchedule(f=2, **kw)


# -------------------------------------------------------------------------------------- named parts
class TwoParts(DistributedSGD):
    """Uploads the gradient twice, as parts 'a' and 'b'; the server averages both aggregates."""

    parts = ("a", "b")

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        g, state, loss, _ = super().client_step(shared, xs, ys, state, lr, grad_fn)
        return ClientOutput({"a": g, "b": 2 * g}, state, loss, {"norm": torch.linalg.vector_norm(g)})

    def server_step(
        self,
        params: Tensor,
        messages: Any,
        aggregator: Any,
        state: State,
        lr: float,
        round: int,
        cohort: Cohort,
    ) -> ServerOutput:
        update = (aggregator["a"](messages["a"]) + aggregator["b"](messages["b"]) / 2) / 2
        return ServerOutput(params - lr * update, state, {"parts": 2.0})


def test_each_part_has_its_own_aggregator_and_the_run_matches_one_part() -> None:
    expected = make(algorithm=DistributedSGD(momentum=0.5))
    for _ in range(2):
        expected.step()
    sim = make(algorithm=TwoParts(momentum=0.5), aggregator=CenteredClipping(tau=1e9))
    stats = [sim.step() for _ in range(2)]
    assert isinstance(sim.aggregators, dict) and sim.aggregators["a"] is not sim.aggregators["b"]
    torch.testing.assert_close(sim.params, expected.params)
    assert stats[0].bits_up == 2 * 32 * sim.flat.dim * 10
    assert stats[0].metrics["parts"] == 2.0 and stats[0].metrics["norm"] > 0


def test_data_size_weighting_is_the_weighted_mean_and_refused_for_robust_rules() -> None:
    alg = FedAvg(weighting="data-size")
    msgs = torch.tensor([[1.0], [4.0]])
    cohort = Cohort(torch.arange(2), torch.zeros(2, dtype=torch.bool), torch.tensor([3, 1]))
    new = alg.server_step(torch.zeros(1), msgs, Average(), {}, 0.1, 0, cohort).params
    torch.testing.assert_close(new, torch.tensor([-(0.75 * 1 + 0.25 * 4)]))
    with pytest.raises(ValueError, match="unverifiable"):
        alg.server_step(torch.zeros(1), msgs, CenteredClipping(), {}, 0.1, 0, cohort)


# ------------------------------------------------------------------------------------- paths, resume
def test_loop_and_vmap_executors_agree_with_sampling_and_compression() -> None:
    kw = dict(per_round=4, compressor=C.ErrorFeedback(C.QSGD(s=8)), algorithm=FedAvg(local_steps=2))
    a, b = make(vectorise=True, **kw), make(vectorise=False, **kw)
    for _ in range(3):
        sa, sb = a.step(), b.step()
        assert sa.bits_up == sb.bits_up
    torch.testing.assert_close(a.params, b.params, rtol=1e-4, atol=1e-5)


def test_resume_mid_run_is_exact_with_sampling_error_feedback_and_random_attackers() -> None:
    kw = dict(
        per_round=5,
        compressor=C.ErrorFeedback(C.RandK(ratio=0.3)),
        byzantine=ByzantineSchedule(f=2, ids="random", resample=True),
        attack=SignFlipping(),
    )
    full = make(**kw)
    for _ in range(4):
        full.step()
    first = make(**kw)
    for _ in range(2):
        first.step()
    resumed = make(**kw)
    resumed.load_state_dict(first.state_dict())
    for _ in range(2):
        resumed.step()
    assert torch.equal(resumed.params, full.params)


def test_foolsgold_history_follows_sampled_clients() -> None:
    """Under client sampling the engine tells FoolsGold each row's client id: one history row per client."""
    from robustfl.aggregators import FoolsGold

    rule = FoolsGold()
    sim = make_simulator(per_round=4, aggregator=rule, algorithm=DistributedSGD())
    for _ in range(4):
        sim.step()
    history = rule.state_dict()["history"]
    touched = (history != 0).any(dim=1).nonzero().flatten()
    assert history.shape[0] <= 10  # ids of the 10 clients, not positions in a cohort of 4
    assert touched.numel() > 4  # more clients than one cohort hold a history
