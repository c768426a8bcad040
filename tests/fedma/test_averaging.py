"""Matched averaging keeps each network's function; plain averaging of permuted networks does not."""

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from robustfl.algorithms.fedma import (
    BBPMAPCost,
    SquaredEuclideanCost,
    adopt,
    average_classifier,
    class_weights,
    layer_chain,
    match_layer,
    matched_average,
    permute,
    reconstruct,
    width_factory,
    widths,
)
from robustfl.models import build_model, num_parameters

# (model, input shape, hidden widths, options, input sampler)
CASES: list[
    tuple[str, tuple[int, ...], list[int], dict[str, object], Callable[[torch.Generator], torch.Tensor]]
] = [
    ("mlp", (1, 6, 6), [20, 16], {}, lambda g: torch.randn(6, 1, 6, 6, generator=g)),
    ("lenet-caffe", (1, 28, 28), [5, 6, 12], {}, lambda g: torch.randn(6, 1, 28, 28, generator=g)),
    ("lenet", (1, 28, 28), [4, 5, 9, 7], {}, lambda g: torch.randn(6, 1, 28, 28, generator=g)),
    (
        "vgg9",
        (3, 8, 8),
        [3, 4, 5, 5, 6, 6, 7, 7],
        {"dropout": False},
        lambda g: torch.randn(6, 3, 8, 8, generator=g),
    ),
    ("lstm", (7,), [5, 10], {}, lambda g: torch.randint(0, 10, (6, 7), generator=g)),
]


def _reference(case: tuple, seed: int = 0) -> tuple[Callable, nn.Module, dict[str, torch.Tensor]]:  # type: ignore[type-arg]
    name, shape, hidden, options, _ = case
    make = width_factory(name, shape, 10, **options)
    torch.manual_seed(seed)
    model = make(hidden).eval()
    # weights of order one, so that distinct neurons are far apart for the matching
    state = {k: 3 * v.detach() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    return make, model, state


def _outputs(make: Callable, state: dict[str, torch.Tensor], chain: list, x: torch.Tensor) -> torch.Tensor:  # type: ignore[type-arg]
    model = make(widths(chain, state)).eval()
    model.load_state_dict(state)
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_permuting_neurons_keeps_the_function(case: tuple) -> None:  # type: ignore[type-arg]
    make, model, state = _reference(case)
    chain = layer_chain(model)
    g = torch.Generator().manual_seed(1)
    x = case[4](g)
    perms = [torch.randperm(w, generator=g) for w in widths(chain, state)]
    moved = permute(state, chain, perms)
    assert any(not torch.equal(moved[k], state[k]) for k in state)
    torch.testing.assert_close(
        _outputs(make, moved, chain, x), _outputs(make, state, chain, x), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "cost",
    [
        BBPMAPCost(log_det=True, sigma_sq=0.01),
        BBPMAPCost(sigma0_sq=0.1, sigma_sq=0.01),
        SquaredEuclideanCost(),
    ],
    ids=["bbp-logdet", "bbp", "euclid"],
)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matched_average_of_permuted_copies_is_the_network(case: tuple, cost: object) -> None:  # type: ignore[type-arg]
    make, model, state = _reference(case)
    chain = layer_chain(model)
    g = torch.Generator().manual_seed(2)
    x = case[4](g)
    clients = []
    for _ in range(4):
        perms = [torch.randperm(w, generator=g) for w in widths(chain, state)]
        clients.append(
            {k: v + 1e-3 * torch.randn(v.shape, generator=g) for k, v in permute(state, chain, perms).items()}
        )
    glob, matchings = matched_average(clients, chain, cost)  # type: ignore[arg-type]
    assert [m.size for m in matchings] == list(widths(chain, state))
    target = _outputs(make, state, chain, x)
    scale = target.abs().max()
    matched_err = (_outputs(make, glob, chain, x) - target).abs().max()
    plain = {k: torch.stack([c[k] for c in clients]).mean(0) for k in state}
    plain_err = (_outputs(make, plain, chain, x) - target).abs().max()
    assert matched_err < 0.02 * scale
    assert plain_err > 0.1 * scale


def test_grown_model_has_the_matched_width_and_keeps_the_mean_function() -> None:
    # clients share 10 of their 16 first-layer neurons; the 6 others are their own
    make = width_factory("mlp", (12,), 3)
    g = torch.Generator().manual_seed(3)
    shared_in, shared_out = torch.randn(10, 13, generator=g), torch.randn(3, 10, generator=g)
    chain = layer_chain(make([16]))
    clients = []
    for _ in range(3):
        w_in = torch.cat([shared_in, torch.randn(6, 13, generator=g)])
        w_out = torch.cat([shared_out, torch.randn(3, 6, generator=g)], dim=1)
        p = torch.randperm(16, generator=g)
        clients.append(
            {
                "net.1.weight": w_in[p, :12],
                "net.1.bias": w_in[p, 12],
                "net.3.weight": w_out[:, p],
                "net.3.bias": torch.zeros(3),
            }
        )
    glob, (m,) = matched_average(clients, chain, SquaredEuclideanCost(threshold=4.0))
    assert m.size == 10 + 3 * 6 == widths(chain, glob)[0]
    grown = make(widths(chain, glob))
    grown.load_state_dict(glob)
    assert num_parameters(grown) == 28 * 13 + 3 * 28 + 3
    # each unshared neuron keeps 1/J of its client's outgoing weight: the mean of the clients' logits
    x = torch.randn(5, 12, generator=g)
    mean_logits = torch.stack([_outputs(make, c, chain, x) for c in clients]).mean(0)
    torch.testing.assert_close(_outputs(make, glob, chain, x), mean_logits, rtol=1e-4, atol=1e-4)


def test_classifier_average_is_weighted_by_label_proportions() -> None:
    counts = torch.tensor([[10, 0, 5], [30, 4, 0]])
    w = class_weights(counts)
    torch.testing.assert_close(w, torch.tensor([[0.25, 0.0, 1.0], [0.75, 1.0, 0.0]], dtype=torch.float64))
    chain = layer_chain(build_model("mlp", (2,), 3, hidden=[4]))
    states = [
        {"net.3.weight": torch.full((3, 4), float(j + 1)), "net.3.bias": torch.full((3,), float(j + 1))}
        for j in range(2)
    ]
    out = average_classifier(chain[-1], states, w)
    torch.testing.assert_close(out["net.3.bias"], torch.tensor([1.75, 2.0, 1.0]))
    with pytest.raises(ValueError, match="label_counts"):
        class_weights(torch.tensor([1, 2]))


def test_adopt_then_reconstruct_gives_back_the_client_layer() -> None:
    make = width_factory("lstm", (5,), 10)
    torch.manual_seed(4)
    states = [{k: v.detach() for k, v in make([3, w]).state_dict().items()} for w in (6, 8)]
    chain = layer_chain(make([3, 6]))
    # match the embedding, then everyone adopts it; then the LSTM layer
    m0, emb = match_layer(chain[0], states, SquaredEuclideanCost(threshold=0.5))
    states = [
        adopt(s, chain[0], emb, chain[1], torch.from_numpy(a), m0.size)
        for s, a in zip(states, m0.assignments, strict=True)
    ]
    m1, lstm = match_layer(chain[1], states, SquaredEuclideanCost(threshold=0.5))
    states2 = [
        adopt(s, chain[1], lstm, chain[2], torch.from_numpy(a), m1.size)
        for s, a in zip(states, m1.assignments, strict=True)
    ]
    glob = {**emb, **lstm, **average_classifier(chain[2], states2, class_weights(torch.ones(2, 10)))}
    assert widths(chain, glob) == (m0.size, m1.size)
    for j, w in enumerate((6, 8)):
        own = reconstruct(
            glob, chain, [torch.from_numpy(m0.assignments[j]), torch.from_numpy(m1.assignments[j])]
        )
        assert widths(chain, own) == (3, w)
        make([3, w]).load_state_dict(own)


def test_layer_chain_rejects_what_fedma_cannot_match() -> None:
    with pytest.raises(ValueError, match="not one of them"):
        layer_chain(build_model("resnet18", (3, 32, 32), 10))
    with pytest.raises(ValueError, match="LSTM"):
        layer_chain(build_model("lstm", (5,), 10, num_layers=2))
    with pytest.raises(ValueError, match="resize"):
        width_factory("resnet18", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="hidden"):
        width_factory("mlp", (3,), 2, hidden=[3])
    chain = layer_chain(build_model("mlp", (4,), 2, hidden=[3]))
    with pytest.raises(ValueError, match="permutation"):
        permute(
            {k: v.detach() for k, v in build_model("mlp", (4,), 2, hidden=[3]).state_dict().items()},
            chain,
            [torch.tensor([0, 0, 1])],
        )


def test_lstm_hidden_to_hidden_average_discounts_rows_and_pads_columns() -> None:
    make = width_factory("lstm", (4,), 6)
    chain = layer_chain(make([3, 2]))
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(6, 3, generator=g)
    w_ih = torch.randn(8, 3, generator=g)  # units u0, u1 of client 0
    states = []
    for j in range(2):
        own = torch.randn(4, 3, generator=g) * 10  # each client's second unit is its own
        rows = torch.cat([w_ih.view(4, 2, 3)[:, :1], own.view(4, 1, 3)], dim=1).reshape(8, 3)
        states.append(
            {
                "encoder.weight": emb,
                "lstm.weight_ih_l0": rows,
                "lstm.weight_hh_l0": torch.full((8, 2), float(j + 1)),
                "lstm.bias_ih_l0": torch.zeros(8),
                "lstm.bias_hh_l0": torch.zeros(8),
                "decoder.weight": torch.zeros(6, 2),
                "decoder.bias": torch.zeros(6),
            }
        )
    matching, params = match_layer(chain[1], states, SquaredEuclideanCost(threshold=1.0))
    assert matching.size == 3
    shared = int(matching.assignments[0][0])
    assert shared == int(matching.assignments[1][0])
    own0, own1 = int(matching.assignments[0][1]), int(matching.assignments[1][1])
    h = params["lstm.weight_hh_l0"].view(4, 3, 3)
    # row of the shared unit: the mean over both clients; a column only client 1 has: its value / 2
    assert torch.allclose(h[:, shared, shared], torch.full((4,), 1.5))
    assert torch.allclose(h[:, shared, own1], torch.full((4,), 1.0))
    # row of client 0's own unit: client 0's values, zero where client 0 has no unit
    assert torch.allclose(h[:, own0, own0], torch.full((4,), 1.0)) and torch.all(h[:, own0, own1] == 0)


@settings(max_examples=15, deadline=None)
@given(
    outer=st.integers(1, 4),
    inner=st.integers(1, 3),
    units=st.integers(1, 5),
    extra=st.integers(0, 4),
    dim=st.integers(0, 2),
    seed=st.integers(0, 1000),
)
def test_select_undoes_lift_on_any_axis_layout(
    outer: int, inner: int, units: int, extra: int, dim: int, seed: int
) -> None:
    from robustfl.algorithms.fedma.layers import Axis, lift, presence, select

    g = torch.Generator().manual_seed(seed)
    size = units + extra
    assignment = torch.randperm(size, generator=g)[:units]
    shape = [2, 3, 2]
    shape[dim] = outer * units * inner
    t = torch.randn(shape, generator=g)
    axis = Axis("w", dim, outer=outer, inner=inner)
    lifted = lift(t, axis, assignment, size)
    assert lifted.shape[dim] == outer * size * inner
    torch.testing.assert_close(select(lifted, axis, assignment, size), t)
    # the padding is exactly where presence says no unit sits
    where = presence(axis, assignment, size).bool()
    assert torch.all(lifted.index_select(dim, torch.nonzero(~where).flatten()) == 0)
