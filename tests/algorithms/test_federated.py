import pytest
import torch
from fl_rounds import quad_grad, run_rounds
from torch import Tensor

from robustfl import algorithms
from robustfl.aggregators import Average, BlockGeometricMedian, Median
from robustfl.algorithms import FLBGMD, Cohort, DistributedSGD, FedAvg, FedProx, Mime, MimeLite, Scaffold

# heterogeneous clients: different optima and curvatures (local steps drift for FedAvg)
TARGETS = torch.tensor([[4.0, -2.0], [-3.0, 1.0], [1.0, 3.0], [0.0, -4.0]])
CURV = torch.tensor([4.0, 0.5, 1.0, 2.0])
OPTIMUM = (CURV[:, None] * TARGETS).sum(0) / CURV.sum()


def ys(a: float, steps: int) -> Tensor:
    return torch.full((steps, 4), a - 1.0)


def xs_of(t: Tensor, steps: int) -> Tensor:
    return t.expand(steps, 4, t.numel()).clone()


@pytest.mark.parametrize("name", ["fl-bgmd", "fedprox", "scaffold", "mime", "mimelite"])
def test_registered(name: str) -> None:
    assert algorithms.get(name).name == name


# ------------------------------------------------------------------------------------------ FedProx
def test_fedprox_local_step_by_hand_and_mu_zero_is_fedavg() -> None:
    alg, lr, x = FedProx(mu=0.5, local_steps=2), 0.1, torch.tensor([1.0, -1.0])
    t = torch.tensor([3.0, 0.0])
    delta, _, _, _ = alg.client_step({"params": x}, xs_of(t, 2), ys(2.0, 2), {}, lr, quad_grad)
    y1 = x - lr * 2.0 * (x - t)  # the proximal term vanishes at y = x
    y2 = y1 - lr * (2.0 * (y1 - t) + 0.5 * (y1 - x))
    torch.testing.assert_close(delta, x - y2)
    plain = FedAvg(local_steps=2).client_step({"params": x}, xs_of(t, 2), ys(2.0, 2), {}, lr, quad_grad)
    prox0 = FedProx(mu=0.0, local_steps=2).client_step(
        {"params": x}, xs_of(t, 2), ys(2.0, 2), {}, lr, quad_grad
    )
    torch.testing.assert_close(plain.message, prox0.message)
    assert FedProx().mu == 0.001


# ------------------------------------------------------------------------------------------ SCAFFOLD
def test_scaffold_one_round_by_hand() -> None:
    alg, lr = Scaffold(local_steps=2, server_lr=0.5, client_fraction=0.5), 0.1
    x, c, ci = torch.tensor([1.0, -1.0]), torch.tensor([0.2, 0.0]), torch.tensor([0.0, 0.4])
    t = torch.tensor([3.0, 0.0])
    msg, state, _, _ = alg.client_step(
        {"params": x, "control": c}, xs_of(t, 2), ys(1.0, 2), {"control": ci}, lr, quad_grad
    )
    y1 = x - lr * ((x - t) - ci + c)
    y2 = y1 - lr * ((y1 - t) - ci + c)
    new_ci = ci - c + (x - y2) / (2 * lr)
    torch.testing.assert_close(msg["delta"], x - y2)
    torch.testing.assert_close(msg["control"], new_ci - ci)
    torch.testing.assert_close(state["control"], new_ci)
    rows = {k: torch.stack([v, 3 * v]) for k, v in msg.items()}
    aggs = {"delta": Average(), "control": Average()}
    new, server, _ = alg.server_step(x, rows, aggs, {"control": c}, lr, 0, Cohort.of(2))
    torch.testing.assert_close(new, x - 0.5 * 2 * msg["delta"])
    torch.testing.assert_close(server["control"], c + 0.5 * 2 * msg["control"])


def test_scaffold_server_control_is_the_mean_of_client_controls_and_removes_drift() -> None:
    alg = Scaffold(local_steps=5)
    x, states, server = run_rounds(alg, TARGETS, rounds=150, lr=0.05, curvature=CURV)
    # full participation + mean: c = mean_i c_i, so the corrections c - c_i sum to zero
    torch.testing.assert_close(server["control"], torch.stack([s["control"] for s in states]).mean(0))
    assert torch.linalg.vector_norm(x - OPTIMUM) < 1e-3
    drift, _, _ = run_rounds(FedAvg(local_steps=5), TARGETS, rounds=150, lr=0.05, curvature=CURV)
    assert torch.linalg.vector_norm(drift - OPTIMUM) > 0.1  # FedAvg's fixed point is biased


def test_scaffold_with_median_stays_bounded_where_the_mean_diverges() -> None:
    def large(part: str, rows: Tensor) -> Tensor:
        return 1e3 * torch.ones_like(rows)

    targets = torch.cat([TARGETS[:3], TARGETS[:3] + 0.1, torch.zeros(2, 2)])
    honest = targets[:6].mean(0)
    robust, _, _ = run_rounds(Scaffold(local_steps=2), targets, 60, 0.05, Median(), 2, large)
    mean, _, _ = run_rounds(Scaffold(local_steps=2), targets, 60, 0.05, Average(), 2, large)
    assert torch.linalg.vector_norm(robust - honest) < 3.0
    assert not torch.linalg.vector_norm(mean - honest) < 100.0


# ------------------------------------------------------------------------------------------ Mime
def test_mimelite_one_round_by_hand() -> None:
    alg, lr = MimeLite(local_steps=2, beta=0.5), 0.1
    x, m, t = torch.tensor([1.0, -1.0]), torch.tensor([0.4, 0.2]), torch.tensor([3.0, 0.0])
    msg, _, _, _ = alg.client_step({"params": x, "momentum": m}, xs_of(t, 2), ys(2.0, 2), {}, lr, quad_grad)
    y1 = x - lr * (0.5 * 2 * (x - t) + 0.5 * m)
    y2 = y1 - lr * (0.5 * 2 * (y1 - t) + 0.5 * m)
    torch.testing.assert_close(msg["delta"], x - y2)
    torch.testing.assert_close(msg["grad"], 2 * (x - t))  # full-batch gradient at x
    rows = {k: torch.stack([v, 3 * v]) for k, v in msg.items()}
    aggs = {"delta": Average(), "grad": Average()}
    new, server, _ = alg.server_step(x, rows, aggs, {"momentum": m}, lr, 0, Cohort.of(2))
    torch.testing.assert_close(new, x - 2 * msg["delta"])
    torch.testing.assert_close(server["momentum"], 0.5 * 2 * msg["grad"] + 0.5 * m)


def test_mime_control_variate_has_zero_mean() -> None:
    alg, lr = Mime(local_steps=1, beta=0.0), 0.1
    anchor = torch.tensor([0.5, 0.5])
    full = torch.stack(
        [quad_grad(anchor, xs_of(t, 1)[0], ys(float(a), 1)[0])[0] for t, a in zip(TARGETS, CURV, strict=True)]
    )
    c = full.mean(0)
    # over clients, the control variates g_i(a) - c sum to zero ...
    torch.testing.assert_close((full - c).sum(0), torch.zeros(2), atol=1e-6, rtol=0)
    # ... over a client's minibatches too: noisy batches around t average to the full gradient at a
    gen = torch.Generator().manual_seed(0)
    batches = TARGETS[0] + torch.randn(4000, 4, 2, generator=gen)
    g = torch.stack([quad_grad(anchor, b, torch.full((4,), 3.0))[0] for b in batches])
    torch.testing.assert_close(g.mean(0), full[0], atol=0.15, rtol=0)
    # at y = a every client's corrected direction is the global gradient c: no drift
    shared = {
        "params": anchor,
        "momentum": torch.zeros(2),
        "anchor": anchor,
        "control": c,
        "ready": torch.tensor(1.0),
    }
    for t, a in zip(TARGETS, CURV, strict=True):
        msg, _, _, _ = alg.client_step(shared, xs_of(t, 1), ys(float(a), 1), {}, lr, quad_grad)
        torch.testing.assert_close(msg["delta"], lr * c)


@pytest.mark.parametrize("cls", [Mime, MimeLite])
def test_mime_converges_on_heterogeneous_quadratics(cls: type[MimeLite]) -> None:
    x, _, _ = run_rounds(cls(local_steps=3, beta=0.5), TARGETS, rounds=200, lr=0.05, curvature=CURV)
    error = torch.linalg.vector_norm(x - OPTIMUM)
    assert error < (1e-3 if cls is Mime else 0.5)


# ------------------------------------------------------------------------------------------ FL-BGMD
def test_fl_bgmd_sync_schedule_masks_steps() -> None:
    alg = FLBGMD(sync_steps=[1, 3, 6])
    assert alg.local_steps == 3 and [alg.gap(r) for r in range(5)] == [1, 2, 3, 3, 3]
    x, t, lr = torch.tensor([1.0, -1.0]), torch.tensor([3.0, 0.0]), 0.1
    out = alg.client_step(alg.broadcast(x, {}, 1), xs_of(t, 3), ys(1.0, 3), {}, lr, quad_grad)
    y1 = x - lr * (x - t)
    y2 = y1 - lr * (y1 - t)
    torch.testing.assert_close(out.message, x - y2)  # two of the three steps run in period 1
    assert FLBGMD(sync_every=4).local_steps == 4
    with pytest.raises(ValueError, match="increasing"):
        FLBGMD(sync_steps=[2, 2])
    with pytest.raises(ValueError, match="exactly one"):
        FLBGMD(sync_every=2, sync_steps=[1])


def test_fl_bgmd_with_one_local_step_and_k_equal_d_is_bgmd() -> None:
    lr, d = 0.1, 2
    # BGMD steps x - lr * GM(g); FL-BGMD sends lr * g: the same GM when its smoothing nu scales by lr
    a, _, _ = run_rounds(FLBGMD(), TARGETS, 20, lr, BlockGeometricMedian(k=d, nu=0.1 * lr), noise=0.5)
    b, _, _ = run_rounds(DistributedSGD(), TARGETS, 20, lr, BlockGeometricMedian(k=d, nu=0.1), noise=0.5)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_fl_bgmd_converges_and_stays_bounded_where_fedavg_mean_diverges() -> None:
    target = torch.tensor([1.0, -2.0, 0.5, 3.0])
    targets = target.expand(8, 4)

    def large(part: str, rows: Tensor) -> Tensor:
        return -1e4 * torch.ones_like(rows)

    clean, _, _ = run_rounds(
        FLBGMD(sync_every=3), targets, 60, 0.1, BlockGeometricMedian(ratio=0.5), noise=0.3
    )
    assert torch.linalg.vector_norm(clean - target) < 0.3
    robust, _, _ = run_rounds(
        FLBGMD(sync_every=3), targets, 60, 0.1, BlockGeometricMedian(ratio=0.5), 2, large, 0.3
    )
    mean, _, _ = run_rounds(FedAvg(local_steps=3), targets, 60, 0.1, Average(), 2, large, 0.3)
    assert torch.linalg.vector_norm(robust - target) < 0.5
    assert not torch.linalg.vector_norm(mean - target) < 100.0


# ------------------------------------------------------------------------------------------ FedAvgM / FedAdam
@pytest.mark.parametrize(("spec", "kw"), [("sgd", {"momentum": 0.9}), ("adam", {})])
def test_fedavg_with_server_optimizer_is_fedavgm_or_fedadam_and_converges(spec: str, kw: dict) -> None:
    from robustfl.algorithms.optim import make_server_optimizer

    alg = FedAvg(
        local_steps=1,
        server_lr=0.5 if spec == "sgd" else 0.05,
        server_optimizer=make_server_optimizer(spec, **kw),
    )
    x, _, server = run_rounds(alg, TARGETS, rounds=300, lr=0.05)
    assert server  # the optimizer's state lives in the server state
    assert torch.linalg.vector_norm(x - TARGETS.mean(0)) < 0.05
