"""The personalisation phase on the engine: per-client accuracy, fine-tuning, weighted averaging."""

import pytest
import torch
import torch.nn.functional as F
from tiny_task import make_simulator, tiny_bn, tiny_data
from torch import Tensor, nn

from robustfl.algorithms import FedAvg
from robustfl.algorithms.personalise import FineTune, PersonalisationStep, WeightedAveraging
from robustfl.data.holdout import client_holdout
from robustfl.engine.personalise import ClientEvaluation, Personalisation


def label_skew(n: int = 6) -> tuple[list[Tensor], list[Tensor]]:
    """Samples sorted by label and cut into ``n`` clients (each holds one or two classes), then a
    quarter of each client held out."""
    order = torch.argsort(tiny_data().y_train, stable=True)
    return client_holdout(list(order.chunk(n)), 0.25, torch.Generator().manual_seed(0))


def linear(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


def trained(model: nn.Module | None = None, rounds: int = 3, **kw: object):  # type: ignore[no-untyped-def]
    train, test = label_skew()
    sim = make_simulator(
        model=model or linear(), partitions=train, algorithm=FedAvg(local_steps=2), lr=0.05, **kw
    )
    for _ in range(rounds):
        sim.step()
    return sim, test


def phase(step: PersonalisationStep, final_round: int, lr: float = 0.05) -> Personalisation:
    return Personalisation(step, lr=lr, batch_size=16, final_round=final_round)


def own_loss(sim, part: Tensor, params: Tensor) -> float:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return float(F.cross_entropy(sim.flat.logits(params, sim.x_store[part]), sim.y_store[part]))


@pytest.mark.parametrize("step", [FineTune(20), WeightedAveraging(20, alpha=0.5, beta=0.2)])
def test_personalising_lowers_each_clients_own_training_loss(step: PersonalisationStep) -> None:
    sim, _ = trained()
    ids = torch.arange(sim.n)
    models = phase(step, sim.round).run(sim, ids)
    for i in ids.tolist():
        part = sim.sampler.partitions[i]
        assert own_loss(sim, part, models[i]) < own_loss(sim, part, sim.params), i


def test_metrics_before_and_after() -> None:
    sim, test = trained()
    evaluation = ClientEvaluation(test, phase(FineTune(20), final_round=sim.round))
    out = evaluation.evaluate(sim)
    assert set(out) == {
        "client_accuracy_mean",
        "client_accuracy_worst10",
        "personal_accuracy_mean",
        "personal_accuracy_worst10",
        "personal_seconds",
    }
    acc = evaluation.accuracies(sim, torch.arange(sim.n))
    assert out["client_accuracy_mean"] == pytest.approx(float(acc.mean()))
    assert out["client_accuracy_worst10"] == pytest.approx(float(acc.min()))  # ceil(0.1 * 6) = 1 client
    assert out["personal_accuracy_worst10"] <= out["personal_accuracy_mean"] <= 1
    # one or two classes per client: the fine-tuned models serve their own client better
    assert out["personal_accuracy_mean"] >= out["client_accuracy_mean"]
    # not due at another round: only the global model's per-client accuracy
    assert set(ClientEvaluation(test, phase(FineTune(2), final_round=99)).evaluate(sim)) == {
        "client_accuracy_mean",
        "client_accuracy_worst10",
    }


def test_accuracy_by_hand() -> None:
    sim, test = trained(rounds=1)
    evaluation = ClientEvaluation(test)
    acc = evaluation.accuracies(sim, torch.tensor([2, 4]))
    for k, i in enumerate([2, 4]):
        pred = sim.flat.logits(sim.params, sim.x_store[test[i]]).argmax(1)
        assert float(acc[k]) == pytest.approx(float((pred == sim.y_store[test[i]]).double().mean()))


def test_alpha_one_without_correction_gives_every_client_the_same_model() -> None:
    sim, _ = trained(rounds=1)
    models = phase(WeightedAveraging(5, alpha=1.0, correction=False), sim.round).run(sim, torch.arange(sim.n))
    torch.testing.assert_close(models, models[:1].expand_as(models), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(models[0], sim.params)


def test_vmap_and_loop_agree() -> None:
    step = WeightedAveraging(4, alpha=0.7, beta=0.3)
    out = []
    for vectorise in (True, False):
        sim, _ = trained(rounds=1, vectorise=vectorise)
        assert sim.vectorised is vectorise
        out.append(phase(step, sim.round).run(sim, torch.arange(sim.n)))
    torch.testing.assert_close(out[0], out[1], rtol=1e-4, atol=1e-5)


def test_the_run_continues_unchanged_after_personalising() -> None:
    """Batch norm in training mode (loop path): running statistics restored, global model untouched,
    the next round identical to a twin that never personalised."""
    sims = [trained(model=tiny_bn(), rounds=2)[0] for _ in range(2)]
    assert not sims[0].vectorised
    buffers = {k: v.clone() for k, v in sims[0].model.named_buffers()}
    params = sims[0].params.clone()
    phase(FineTune(5), sims[0].round).run(sims[0], torch.arange(sims[0].n))
    assert torch.equal(sims[0].params, params)
    for k, v in sims[0].model.named_buffers():
        assert torch.equal(v, buffers[k]), k
    assert sims[0].model.training
    for sim in sims:
        sim.step()
    assert torch.equal(sims[0].params, sims[1].params)


def test_byzantine_clients_are_left_out() -> None:
    sim, test = trained(rounds=1, num_byzantine=2)
    evaluation = ClientEvaluation(test)
    assert evaluation.honest_ids(sim).tolist() == [0, 1, 2, 3]  # the last f = 2 are Byzantine


def test_needs_a_test_split_for_every_client() -> None:
    with pytest.raises(ValueError, match="data.client_test_fraction > 0"):
        ClientEvaluation([torch.arange(3), torch.arange(0)])
    with pytest.raises(ValueError, match="lr must be > 0"):
        Personalisation(FineTune(1), lr=0.0, batch_size=4, final_round=1)
    with pytest.raises(ValueError, match="collaborator_batch_size = 8 exceeds batch_size = 4"):
        Personalisation(FineTune(1), lr=0.1, batch_size=4, final_round=1, collaborator_batch_size=8)


def test_collaborators_contribute_part_of_their_batch() -> None:
    """With b < B the shared batch is the first b samples of every client's own minibatch: alpha = 1
    without correction then equals stepping on the mean gradient of exactly those samples."""
    sim, _ = trained(rounds=1)
    ids = torch.arange(sim.n)
    p = Personalisation(
        WeightedAveraging(2, alpha=1.0, correction=False),
        lr=0.05,
        batch_size=16,
        final_round=1,
        collaborator_batch_size=3,
    )
    models = p.run(sim, ids)
    idx = sim.sampler.sample(ids, sim.round, 2, 16, "personalise")[:, :, :3]
    x = sim.params
    grad_fn = sim.flat.loop_grad_fn()
    for t in range(2):
        together = idx[:, t].reshape(-1)
        g, _ = grad_fn(x, sim.x_store[together], sim.y_store[together])
        x = x - 0.05 * g
    torch.testing.assert_close(models[0], x, rtol=1e-4, atol=1e-5)
