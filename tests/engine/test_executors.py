"""The executors write into one preallocated message buffer; results equal the concatenating code
they replace bit for bit (the reference below is that code: per-layer gradients ``torch.cat``-ed into
flat rows, ``vmap(chunk_size=...)`` concatenating the chunks, the loop stacking its rows)."""

import functools
from typing import Any

import pytest
import torch
from tiny_task import make_simulator, split, tiny_cnn, tiny_data, tiny_dropout
from torch import Tensor
from torch.func import grad_and_value, vmap

from robustfl.aggregators import Average
from robustfl.aggregators.base import Aggregator
from robustfl.algorithms import (
    ClientOutput,
    DistributedSGD,
    FedAvg,
    GradFn,
    State,
)
from robustfl.algorithms import get as get_algorithm
from robustfl.algorithms.optim import ClientOptimizer
from robustfl.engine import FlatModel
from robustfl.engine.executors import LoopExecutor, MessageBuffer, VmapExecutor
from robustfl.engine.inputs import CohortInputs
from robustfl.utils import flatten, unflatten

ALGORITHMS = {
    "sgd": lambda: DistributedSGD(),
    "sgd-momentum": lambda: DistributedSGD(momentum=0.9),
    "sgd-clipped": lambda: DistributedSGD(client_optimizer=ClientOptimizer(clip_norm=0.5)),
    "fedavg-3": lambda: FedAvg(local_steps=3),
    "mime": lambda: get_algorithm("mime", local_steps=2),
    "scaffold": lambda: get_algorithm("scaffold", local_steps=2),
    "rsa": lambda: get_algorithm("rsa"),
}


def cat_vmap_grad_fn(flat: FlatModel) -> GradFn:
    grad_of_tensors = grad_and_value(flat._loss)

    def grad_fn(params: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        grads, loss = grad_of_tensors(tuple(unflatten(params, flat.shapes)), x, y)
        return flatten(grads), loss

    return grad_fn


def cat_loop_grad_fn(flat: FlatModel) -> GradFn:
    def grad_fn(params: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        leaves = tuple(t.detach().requires_grad_(True) for t in unflatten(params, flat.shapes))
        loss = flat._loss(leaves, x, y)
        return flatten(torch.autograd.grad(loss, leaves)), loss.detach()

    return grad_fn


class CatVmap:
    """The vmap executor as it was: the whole cohort's inputs gathered at once, chunked ``vmap`` and
    ``torch.cat``."""

    def __init__(self, clients_per_call: int) -> None:
        self.clients_per_call = clients_per_call

    def run(
        self,
        algorithm: Any,
        flat: FlatModel,
        shared: State,
        xs: Tensor | CohortInputs,
        ys: Tensor,
        states: State,
        lr: float,
    ) -> ClientOutput:
        xs = xs.gather() if isinstance(xs, CohortInputs) else xs
        step = functools.partial(algorithm.client_step, lr=lr, grad_fn=cat_vmap_grad_fn(flat))
        batched = vmap(
            step, in_dims=(None, 0, 0, 0), randomness="different", chunk_size=self.clients_per_call
        )
        return ClientOutput(*batched(shared, xs, ys, states))


class CatLoop:
    """The loop executor as it was: per-client rows stacked."""

    def run(
        self, algorithm: Any, flat: FlatModel, shared: State, xs: Tensor, ys: Tensor, states: State, lr: float
    ) -> ClientOutput:
        outs = [
            algorithm.client_step(
                shared, xs[i], ys[i], {k: v[i] for k, v in states.items()}, lr, cat_loop_grad_fn(flat)
            )
            for i in range(xs.shape[0])
        ]
        first = outs[0]
        msg = (
            torch.stack([o.message for o in outs])
            if isinstance(first.message, Tensor)
            else {k: torch.stack([o.message[k] for o in outs]) for k in first.message}
        )
        return ClientOutput(
            msg,
            {k: torch.stack([o.state[k] for o in outs]) for k in first.state},
            torch.stack([o.loss for o in outs]),
            {k: torch.stack([o.metrics[k] for o in outs]) for k in first.metrics},
        )


def assert_identical(a: Any, b: Any) -> None:
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor) and a.shape == b.shape and a.dtype == b.dtype
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            assert_identical(a[k], b[k])
    else:
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_identical(x, y)


def one_round_inputs(
    algorithm: Any, model: torch.nn.Module, m: int = 7
) -> tuple[FlatModel, State, Tensor, Tensor, State]:
    data = tiny_data()
    flat = FlatModel(model)
    params = flat.flat_params()
    gen = torch.Generator().manual_seed(5)
    idx = torch.randint(len(data.x_train), (m, algorithm.local_steps, 8), generator=gen)
    one = algorithm.init_client_state(params)
    states = {
        k: v.unsqueeze(0).repeat_interleave(m, 0) + 0.01 * torch.randn(m, *v.shape, generator=gen)
        for k, v in one.items()
    }
    shared = algorithm.broadcast(params, algorithm.init_server_state(params), 0)
    return flat, shared, data.x_train[idx], data.y_train[idx], states


@pytest.mark.parametrize("name", list(ALGORITHMS))
@pytest.mark.parametrize("vectorised", [True, False])
def test_outputs_equal_the_concatenating_executors_bit_for_bit(name: str, vectorised: bool) -> None:
    algorithm = ALGORITHMS[name]()
    flat, shared, xs, ys, states = one_round_inputs(algorithm, tiny_cnn())
    new = VmapExecutor(3) if vectorised else LoopExecutor()  # 7 clients: chunks of 3, 3, 1
    old = CatVmap(3) if vectorised else CatLoop()
    for _ in range(2):  # the second call reuses the message buffer
        got = new.run(algorithm, flat, shared, xs, ys, states, 0.1)
        assert_identical(got, old.run(algorithm, flat, shared, xs, ys, states, 0.1))
        del got


def test_dropout_draws_the_same_masks_as_chunked_vmap() -> None:
    algorithm = DistributedSGD()
    flat, shared, xs, ys, states = one_round_inputs(algorithm, tiny_dropout())
    torch.manual_seed(11)
    got = VmapExecutor(3).run(algorithm, flat, shared, xs, ys, states, 0.1)
    torch.manual_seed(11)
    assert_identical(got, CatVmap(3).run(algorithm, flat, shared, xs, ys, states, 0.1))


def test_a_gradient_sent_as_is_stays_in_the_buffer_which_is_reused_only_when_free() -> None:
    algorithm = DistributedSGD()
    flat, shared, xs, ys, states = one_round_inputs(algorithm, tiny_cnn())
    ex = VmapExecutor(3)
    msg = ex.run(algorithm, flat, shared, xs, ys, states, 0.1).message
    assert isinstance(msg, Tensor)
    first = msg.data_ptr()
    held = msg[2:4]  # a view that outlives the round (an aggregator that kept the messages)
    del msg
    kept = held.clone()
    again = ex.run(algorithm, flat, shared, xs, ys, states, 0.1).message
    assert isinstance(again, Tensor) and again.data_ptr() != first and torch.equal(held, kept)
    second = again.data_ptr()
    del again, held
    third = ex.run(algorithm, flat, shared, xs, ys, states, 0.1).message
    assert isinstance(third, Tensor) and third.data_ptr() == second  # free again: reused


def test_buffer_follows_shape_and_dtype() -> None:
    buf = MessageBuffer()
    a = buf.get(4, 6, torch.float32, torch.device("cpu"))
    ptr = a.data_ptr()
    del a
    assert buf.get(4, 6, torch.float32, torch.device("cpu")).data_ptr() == ptr
    assert buf.get(5, 6, torch.float32, torch.device("cpu")).shape == (5, 6)
    assert buf.get(5, 6, torch.float64, torch.device("cpu")).dtype == torch.float64


def test_state_that_keeps_the_gradient_survives_the_message_overwriting_it() -> None:
    class KeepsGradient(DistributedSGD):
        """Sends twice its gradient and keeps the raw gradient as state (aliasing the buffer row)."""

        def init_client_state(self, params: Tensor) -> State:
            return {"last": params.new_zeros(params.shape)}

        def client_step(
            self, shared: State, xs: Tensor, ys: Tensor, state: State, lr: float, grad_fn: GradFn
        ) -> ClientOutput:
            grad, loss = grad_fn(shared["params"], xs[0], ys[0])
            return ClientOutput(2 * grad, {"last": grad}, loss)

    algorithm = KeepsGradient()
    flat, shared, xs, ys, states = one_round_inputs(algorithm, tiny_cnn())
    for new, old in [(VmapExecutor(3), CatVmap(3)), (LoopExecutor(), CatLoop())]:
        got = new.run(algorithm, flat, shared, xs, ys, states, 0.1)
        want = old.run(algorithm, flat, shared, xs, ys, states, 0.1)
        assert_identical(got, want)
        assert torch.equal(got.message, 2 * got.state["last"])  # type: ignore[operator]


class OldExecutorSimulator:
    """Builds the tests' simulator with the concatenating executor of the same path."""

    @staticmethod
    def make(vectorise: bool, old: bool, aggregator: Aggregator, **kw: Any) -> Any:
        sim = make_simulator(
            model=tiny_cnn(),
            dataset=tiny_data(),
            partitions=split(10),
            vectorise=vectorise,
            clients_per_call=4,
            aggregator=aggregator,
            **kw,
        )
        if old:
            sim.executor = CatVmap(4) if vectorise else CatLoop()
        return sim


@pytest.mark.parametrize("vectorise", [True, False])
def test_a_seeded_run_is_identical_to_the_concatenating_engine(vectorise: bool) -> None:
    from robustfl.aggregators import Median
    from robustfl.attacks import BitFlip

    runs = []
    for old in (False, True):
        sim = OldExecutorSimulator.make(
            vectorise, old, Median(), num_byzantine=2, attack=BitFlip(), per_round=7
        )
        losses = [sim.step().loss for _ in range(3)]
        runs.append((sim.params.clone(), {k: v.clone() for k, v in sim.client_state.items()}, losses))
    assert_identical(runs[0][:2], runs[1][:2])
    assert runs[0][2] == runs[1][2]


def test_full_participation_mean_run_is_identical_too() -> None:
    runs = [OldExecutorSimulator.make(True, old, Average()) for old in (False, True)]
    for _ in range(2):
        assert runs[0].step().loss == runs[1].step().loss
    assert torch.equal(runs[0].params, runs[1].params)


def test_a_parameter_the_loss_does_not_use_gets_a_zero_gradient_row() -> None:
    class Unused(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(3))  # first in the layout: unbatched gradient
            self.lin = torch.nn.Linear(64, 3)

        def forward(self, x: Tensor) -> Tensor:
            out: Tensor = self.lin(x.flatten(1))
            return out

    algorithm = get_algorithm("mime", local_steps=2)  # two gradients per step: the second one is new
    torch.manual_seed(0)
    flat, shared, xs, ys, states = one_round_inputs(algorithm, Unused())
    got = VmapExecutor(3).run(algorithm, flat, shared, xs, ys, states, 0.1)
    assert_identical(got, CatVmap(3).run(algorithm, flat, shared, xs, ys, states, 0.1))
