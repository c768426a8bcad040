from typing import Any

import pytest
import torch
import torch.nn.functional as F
from tiny_task import (
    DataDependent,
    TinyLSTM,
    make_simulator,
    split,
    tiny_bn,
    tiny_cnn,
    tiny_data,
    tiny_dropout,
)
from torch import Tensor

from robustfl.aggregators import NNM, BlockGeometricMedian, Median
from robustfl.aggregators.base import Aggregator
from robustfl.algorithms import ClientOutput, Cohort, DistributedSGD, FedAvg, GradFn, ServerOutput, State
from robustfl.attacks import BitFlip
from robustfl.attacks.data import LabelFlip
from robustfl.compressors import ErrorFeedback, TopK
from robustfl.engine import FlatModel, Simulator


class NeedsFour(Aggregator):
    def check_n(self, n: int) -> None:
        if n < 4:
            raise ValueError(f"NeedsFour needs n >= 4, got n={n}")

    def _aggregate(self, x: Tensor) -> Tensor:
        return x.mean(dim=0)


def run(sim: Simulator, rounds: int) -> Tensor:
    for _ in range(rounds):
        sim.step()
    return sim.params.clone()


def make(**kw: Any) -> Simulator:
    return make_simulator(**kw)


def test_same_seed_same_params_different_seed_differs() -> None:
    a, b, c = make(), make(), make(seed=4)
    stats_a = [a.step() for _ in range(3)]
    stats_b = [b.step() for _ in range(3)]
    assert torch.equal(a.params, b.params)
    assert [s.loss for s in stats_a] == [s.loss for s in stats_b]
    assert a.evaluate() == b.evaluate()
    assert not torch.equal(run(c, 3), a.params)


@pytest.mark.parametrize("algorithm", [DistributedSGD(momentum=0.9), FedAvg(local_steps=3, server_lr=0.5)])
def test_vectorised_equals_loop(algorithm: object) -> None:
    vec = make(algorithm=algorithm, vectorise=True, num_byzantine=2, attack=BitFlip())
    loop = make(algorithm=algorithm, vectorise=False, num_byzantine=2, attack=BitFlip())
    assert vec.vectorised and not loop.vectorised
    for _ in range(4):
        sv, sl = vec.step(), loop.step()
        assert sv.loss == pytest.approx(sl.loss, rel=1e-5)
    # batched and per-client kernels round differently; the -100x attack amplifies that a little
    torch.testing.assert_close(vec.params, loop.params, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(vec.client_state, loop.client_state, rtol=1e-4, atol=1e-5)


def test_chunked_vmap_matches_one_call() -> None:
    whole = run(make(clients_per_call=10), 3)
    chunked = make(clients_per_call=3)
    assert chunked.clients_per_call == 3 and make().clients_per_call == 40  # 320 samples / batch 8
    torch.testing.assert_close(run(chunked, 3), whole, rtol=1e-5, atol=1e-6)


def test_mean_without_attack_is_minibatch_sgd_on_the_union_batch() -> None:
    data = tiny_data()
    # batch_size = partition size: each client's batch is its whole partition (in some order), so the
    # mean of the client gradients is the full-batch gradient over the union of the partitions.
    sim = make(algorithm=DistributedSGD(), batch_size=30, lr=0.3)
    flat = FlatModel(tiny_cnn())
    x0 = flat.flat_params()
    leaf = x0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(flat.logits(leaf, data.x_train), data.y_train), leaf)
    sim.step()
    torch.testing.assert_close(sim.params, x0 - 0.3 * grad, rtol=1e-5, atol=1e-6)


def test_fedavg_with_one_local_step_equals_sgd() -> None:
    sgd = run(make(algorithm=DistributedSGD()), 4)
    fedavg = run(make(algorithm=FedAvg(local_steps=1)), 4)
    torch.testing.assert_close(fedavg, sgd, rtol=1e-5, atol=1e-6)


def test_loss_decreases() -> None:
    sim = make(lr=0.2)
    before = sim.evaluate()["test_loss"]
    run(sim, 15)
    assert sim.evaluate()["test_loss"] < 0.8 * before


def test_bit_flip_breaks_average_not_median() -> None:
    kw = dict(num_byzantine=3, attack=BitFlip(), lr=0.2, algorithm=DistributedSGD())
    mean_sim, median_sim = make(**kw), make(aggregator=Median(), **kw)
    start = mean_sim.evaluate()["test_accuracy"]
    run(mean_sim, 10)
    run(median_sim, 10)
    assert median_sim.evaluate()["test_accuracy"] > start + 0.2
    assert median_sim.evaluate()["test_accuracy"] > mean_sim.evaluate()["test_accuracy"] + 0.2


def test_state_dict_round_trip_resumes_identically(tmp_path: object) -> None:
    sim = make(num_byzantine=1, attack=BitFlip())
    run(sim, 2)
    path = f"{tmp_path}/ckpt.pt"
    torch.save(sim.state_dict(), path)
    expected = run(sim, 3)
    resumed = make(num_byzantine=1, attack=BitFlip())
    resumed.load_state_dict(torch.load(path, weights_only=True))
    assert resumed.round == 2
    assert torch.equal(run(resumed, 3), expected)


def test_batch_norm_picks_the_loop_and_says_why() -> None:
    sim = make(model=tiny_bn().eval())  # clients train in train mode whatever mode the model came in
    assert not sim.vectorised and "batch norm" in sim.path_reason
    run(sim, 2)
    with pytest.raises(ValueError, match="vectorise=True but vmap cannot serve"):
        make(model=tiny_bn(), vectorise=True)


def test_a_model_vmap_cannot_serve_falls_back_to_the_loop() -> None:
    sim = make(model=DataDependent())
    assert not sim.vectorised and sim.path_reason.startswith("vmap failed")
    assert sim.step().loss > 0


def test_a_model_vmap_would_loop_over_internally_gets_the_loop() -> None:
    torch.manual_seed(0)
    sim = make(model=TinyLSTM())
    assert not sim.vectorised and "no batching rule" in sim.path_reason
    assert "LSTM" in sim.path_reason  # found from the module type, not from a torch warning's wording
    assert sim.step().loss > 0


@pytest.mark.parametrize("vectorise", [True, False])
def test_dropout_is_reproducible_and_resumes(vectorise: bool) -> None:
    def build() -> Simulator:
        return make(model=tiny_dropout(), vectorise=vectorise)

    a, b = build(), build()
    torch.manual_seed(123)  # the caller's global generator must not matter
    run(a, 2)
    torch.manual_seed(456)
    run(b, 2)
    assert torch.equal(a.params, b.params)
    snapshot = a.state_dict()
    expected = run(a, 2)
    c = build()
    c.load_state_dict(snapshot)
    assert torch.equal(run(c, 2), expected)


def test_data_attack_poisons_only_byzantine_clients() -> None:
    data = tiny_data()
    sim = make(num_byzantine=2, data_attack=LabelFlip(fraction=1.0, num_classes=3))
    parts = sim.sampler.partitions
    assert all(torch.equal(sim.y_store[p], data.y_train[p]) for p in parts[:8])
    honest_size = len(data.x_train)
    for part, original in zip(parts[8:], split(10)[8:], strict=True):
        assert int(part.min()) >= honest_size  # a poisoned copy, the shared data is untouched
        assert torch.equal(sim.x_store[part], data.x_train[original])
        assert not torch.equal(sim.y_store[part], data.y_train[original])


def test_error_feedback_compression_counts_bits_and_resumes() -> None:
    def build() -> Simulator:
        return make(compressor=ErrorFeedback(TopK(k=20)), aggregator=BlockGeometricMedian(k=50))

    sim = build()
    stats = sim.step()
    plain = 32 * sim.flat.dim * sim.n
    assert 0 < stats.bits_up < plain / 10
    run(sim, 1)
    snapshot = sim.state_dict()
    expected = run(sim, 2)
    resumed = build()
    resumed.load_state_dict(snapshot)
    assert torch.equal(run(resumed, 2), expected)


def test_evaluate_extra_sets() -> None:
    data = tiny_data()
    sim = make()
    run(sim, 2)
    out = sim.evaluate({"backdoor": (data.x_test, torch.zeros_like(data.y_test))}, batch_size=7)
    assert set(out) == {"test_loss", "test_accuracy", "backdoor_loss", "backdoor_accuracy"}
    with torch.no_grad():
        predicted = sim.model(data.x_test).argmax(1)
    assert out["test_accuracy"] == pytest.approx(float((predicted == data.y_test).float().mean()))
    assert out["backdoor_accuracy"] == pytest.approx(float((predicted == 0).float().mean()))


def test_round_stats() -> None:
    sim = make(lr=lambda r: 0.1 / (r + 1))
    s0, s1 = sim.step(), sim.step()
    d = sim.flat.dim
    assert (s0.round, s1.round, s1.lr) == (1, 2, 0.05)
    assert s0.bits_up == s0.bits_down == 32 * d * 10
    assert set(s0.seconds) == {"plan", "compute", "attack", "compress", "decode", "aggregate", "update"}


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(num_byzantine=10), "num_byzantine must be < the number of clients"),
        (dict(lr=-1.0), "lr must be a positive number"),
        (dict(batch_size=0), "batch_size must be >= 1"),
        (dict(clients_per_call=0), "clients_per_call must be >= 1"),
        (dict(partitions=[torch.arange(5), torch.arange(0)]), r"partitions\[1\] is empty"),
        (dict(partitions=[torch.arange(5), torch.tensor([999])]), r"partitions\[1\] has indices outside"),
        (dict(partitions=split(3), aggregator=NeedsFour()), "needs n >= 4"),
        (
            dict(model=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 3))),
            "cannot process the training inputs",
        ),
        (
            dict(model=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))),
            "build it with num_classes=3",
        ),
    ],
)
def test_user_errors(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(**kw)


class TwoPartMessage(DistributedSGD):
    """Sends [g, 2g] (length 2d); the server reads the second half: the same math as SGD."""

    def client_step(
        self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
    ) -> ClientOutput:
        g, state, loss, _ = super().client_step(shared, xs, ys, state, lr, grad_fn)
        return ClientOutput(torch.cat([g, 2 * g]), state, loss)

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
        return ServerOutput(params - lr * aggregator(messages[:, params.numel() :]) / 2, state)


def test_messages_may_be_longer_than_the_parameters() -> None:
    expected = run(make(algorithm=DistributedSGD()), 2)
    sim = make(algorithm=TwoPartMessage(), compressor=ErrorFeedback(TopK(k=10**6)))
    assert sim.step().bits_up > 2 * 32 * sim.flat.dim * sim.n
    sim.step()
    torch.testing.assert_close(sim.params, expected)


def test_a_schedule_that_returns_a_bad_lr_is_reported() -> None:
    sim = make(lr=lambda r: 0.1 if r == 0 else 0.0)
    sim.step()
    with pytest.raises(ValueError, match="lr schedule returned 0.0 for round 1"):
        sim.step()


def test_a_lone_pre_aggregator_is_reported() -> None:
    sim = make(aggregator=NNM(f=1))
    with pytest.raises(ValueError, match=r"must reduce \[n, d\] to \[d\]"):
        sim.step()


def test_attack_with_wrong_shape_is_reported() -> None:
    sim = make(num_byzantine=2, attack=lambda honest, f, **_: honest[:1])
    with pytest.raises(ValueError, match=r"attack returned shape"):
        sim.step()
