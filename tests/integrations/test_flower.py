"""RobustStrategy.aggregate_train on Flower-built messages, and the client helper (needs flwr)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

flwr = pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402

from robustfl.integrations.flower import UPDATE_KEY, WIRE_KEY, RobustClient, RobustStrategy  # noqa: E402
from robustfl.integrations.flower.arrays import flatten, unflatten, wire_array  # noqa: E402


@pytest.fixture(autouse=True)
def task_identity() -> Iterator[None]:
    """Flower stamps messages with the run's identity, which a ServerApp sets; here a fixed one."""
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


class Grid:
    """The part of Flower's Grid that node sampling reads."""

    def __init__(self, nodes: int) -> None:
        self.nodes = list(range(1, nodes + 1))

    def get_node_ids(self) -> list[int]:
        return self.nodes


def global_arrays() -> ArrayRecord:
    gen = np.random.default_rng(0)
    return ArrayRecord(
        array_dict={"w": Array(gen.normal(size=(3, 4)).astype("float32")), "b": Array(np.zeros(4, "float32"))}
    )


def instructions(strategy: RobustStrategy, nodes: int) -> list[Message]:
    return list(strategy.configure_train(1, global_arrays(), ConfigRecord(), Grid(nodes)))


def reply(to: Message, arrays: ArrayRecord, n: int = 10) -> Message:
    content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": n, "loss": 1.0})})
    return Message(content=content, reply_to=to)


def shifted(by: float) -> ArrayRecord:
    vector, layout = flatten(global_arrays())
    return unflatten(vector + by, layout)


def test_median_ignores_byzantine_weights_and_their_claimed_sizes() -> None:
    strategy = RobustStrategy("median", f=2, min_train_nodes=5, min_available_nodes=5)
    msgs = instructions(strategy, 5)
    replies = [reply(m, shifted(0.1)) for m in msgs[:3]]
    replies += [reply(m, shifted(1e6), n=10**9) for m in msgs[3:]]  # huge weights, huge claimed size
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is not None and metrics is not None
    new, _ = flatten(arrays)
    start, _ = flatten(global_arrays())
    assert torch.allclose(new, start + 0.1, atol=1e-5)
    assert metrics["robustfl-replies"] == 5 and metrics["robustfl-dropped"] == 0


def test_malformed_replies_are_dropped_and_counted() -> None:
    strategy = RobustStrategy("trimmed-mean", f=1, min_train_nodes=6, min_available_nodes=6)
    msgs = instructions(strategy, 6)
    bad_shape = ArrayRecord(
        array_dict={"w": Array(np.zeros((2, 2), "float32")), "b": Array(np.zeros(4, "float32"))}
    )
    nan = shifted(float("nan"))
    garbage = ArrayRecord(array_dict={WIRE_KEY: wire_array(b"\x00not a robustfl message")})
    replies = [reply(m, shifted(0.5)) for m in msgs[:3]]
    replies += [reply(msgs[3], bad_shape), reply(msgs[4], nan), reply(msgs[5], garbage)]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is not None and metrics is not None
    assert metrics["robustfl-dropped"] == 3 and metrics["robustfl-replies"] == 3
    new, _ = flatten(arrays)
    assert torch.allclose(new, flatten(global_arrays())[0] + 0.5, atol=1e-5)


def test_the_bound_is_rechecked_on_the_replies_that_arrived() -> None:
    strategy = RobustStrategy("krum", f=2, min_train_nodes=7, min_available_nodes=7)
    msgs = instructions(strategy, 7)
    arrays, metrics = strategy.aggregate_train(1, [reply(m, shifted(0.1)) for m in msgs[:3]])
    assert arrays is None and metrics is not None and metrics["robustfl-bound-failed"] == 1


def test_compressed_replies_travel_as_uint8_wire_bytes() -> None:
    from robustfl.compressors import COMPRESSORS

    topk = COMPRESSORS.get("topk", k=4)
    strategy = RobustStrategy("mean", compressor=topk, min_train_nodes=2, min_available_nodes=2)
    msgs = instructions(strategy, 2)
    delta = torch.zeros(16)
    delta[:4] = torch.tensor([1.0, -2.0, 3.0, -4.0])
    data = topk.compress(delta).to_bytes()
    arrays, _ = strategy.aggregate_train(
        1, [reply(m, ArrayRecord(array_dict={WIRE_KEY: wire_array(data)})) for m in msgs]
    )
    assert arrays is not None
    new, _ = flatten(arrays)
    assert torch.allclose(new, flatten(global_arrays())[0] - delta, atol=1e-6)  # FedAvg: x - agg(x - y)


def test_the_client_helper_runs_a_robustfl_client_step_with_state() -> None:
    from robustfl.compressors import COMPRESSORS, ErrorFeedback

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.randn(40, 4), torch.randint(3, (40,))
    comp = ErrorFeedback(COMPRESSORS.get("topk", k=3))
    client = RobustClient(model, x, y, algorithm="fedavg", compressor=comp, batch_size=8, client_id=3)
    strategy = RobustStrategy("median", compressor=comp, min_train_nodes=1, min_available_nodes=1)
    start = ArrayRecord(torch_state_dict={k: v.detach().clone() for k, v in model.state_dict().items()})
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    instruction = next(iter(strategy.configure_train(1, start, ConfigRecord(), Grid(1))))
    answer = client.train(instruction, context)
    assert (
        WIRE_KEY in answer.content["arrays"] and answer.content["arrays"][WIRE_KEY].numpy().dtype == np.uint8
    )
    assert "robustfl.client-state" in context.state.array_records  # error-feedback memory kept
    arrays, metrics = strategy.aggregate_train(1, [answer])
    assert arrays is not None and metrics["robustfl-dropped"] == 0
    moved, _ = flatten(arrays)
    assert 0 < int((moved != flatten(start)[0]).sum()) <= 3  # top-3 coordinates moved


def test_uncompressed_client_messages_use_the_update_key() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    client = RobustClient(model, torch.randn(10, 4), torch.randint(3, (10,)), algorithm="sgd", batch_size=4)
    strategy = RobustStrategy("mean", algorithm="sgd", lr=0.5, min_train_nodes=1, min_available_nodes=1)
    start = ArrayRecord(torch_state_dict={k: v.detach().clone() for k, v in model.state_dict().items()})
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    answer = client.train(next(iter(strategy.configure_train(1, start, ConfigRecord(), Grid(1)))), context)
    grad = torch.from_numpy(answer.content["arrays"][UPDATE_KEY].numpy())
    arrays, _ = strategy.aggregate_train(1, [answer])
    assert arrays is not None
    assert torch.allclose(flatten(arrays)[0], flatten(start)[0] - 0.5 * grad, atol=1e-6)


def test_summary_names_the_robustfl_components(caplog: pytest.LogCaptureFixture) -> None:
    RobustStrategy("median", f=1).summary()
    assert "Median" in caplog.text and "num-examples ignored" in caplog.text


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="f must be"):
        RobustStrategy("median", f=-1)
    with pytest.raises(ValueError, match="lr must be"):
        RobustStrategy("median", lr=0.0)


def _round_trip(
    strategy: RobustStrategy, clients: list[RobustClient], contexts: list[Context], r: int, start
):
    instructions = list(strategy.configure_train(r, start, ConfigRecord(), Grid(len(clients))))
    answers = [c.train(m, ctx) for c, m, ctx in zip(clients, instructions, contexts, strict=True)]
    return instructions, strategy.aggregate_train(r, answers)


def _clients(algorithm: str, n: int = 3) -> tuple[list[RobustClient], list[Context], ArrayRecord]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    start = ArrayRecord(torch_state_dict={k: v.detach().clone() for k, v in model.state_dict().items()})
    gen = torch.Generator().manual_seed(1)
    clients = [
        RobustClient(
            copy_of(model),
            torch.randn(20, 4, generator=gen),
            torch.randint(3, (20,), generator=gen),
            algorithm=algorithm,
            batch_size=5,
            client_id=i,
        )
        for i in range(n)
    ]
    contexts = [
        Context(run_id=1, node_id=i + 1, node_config={}, state=RecordDict(), run_config={}) for i in range(n)
    ]
    return clients, contexts, start


def copy_of(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def test_scaffold_uploads_two_parts_and_receives_the_server_control_variate() -> None:
    from robustfl.integrations.flower.arrays import SHARED_KEY

    clients, contexts, start = _clients("scaffold")
    strategy = RobustStrategy("mean", algorithm="scaffold", min_train_nodes=3, min_available_nodes=3)
    first, (arrays, metrics) = _round_trip(strategy, clients, contexts, 1, start)
    assert arrays is not None and metrics["robustfl-replies"] == 3
    assert not first[0].content[SHARED_KEY]["control"].numpy().any()  # c = 0 at first
    control = strategy.server_state["control"]
    assert bool(control.abs().sum() > 0)  # c moved by the mean of the clients' control updates
    second, (arrays2, _) = _round_trip(strategy, clients, contexts, 2, arrays)
    sent = torch.from_numpy(second[0].content[SHARED_KEY]["control"].numpy())
    assert torch.equal(sent, control)  # the broadcast carries the server state
    assert arrays2 is not None


def test_mime_and_c_rsa_run_their_own_broadcast_and_message_widths() -> None:
    for algorithm in ("mime", "c-rsa"):
        clients, contexts, start = _clients(algorithm)
        strategy = RobustStrategy("median", algorithm=algorithm, min_train_nodes=3, min_available_nodes=3)
        _, (arrays, metrics) = _round_trip(strategy, clients, contexts, 1, start)
        assert arrays is not None and metrics["robustfl-dropped"] == 0, algorithm
        assert not torch.equal(flatten(arrays)[0], flatten(start)[0]), algorithm


def test_a_reply_whose_width_differs_from_most_is_dropped() -> None:
    strategy = RobustStrategy("mean", algorithm="sgd", min_train_nodes=4, min_available_nodes=4)
    msgs = instructions(strategy, 4)
    answers = [
        reply(m, ArrayRecord(array_dict={UPDATE_KEY: Array(np.ones(16 if i < 3 else 15, "float32"))}))
        for i, m in enumerate(msgs)
    ]
    arrays, metrics = strategy.aggregate_train(1, answers)
    assert arrays is not None and metrics["robustfl-dropped"] == 1 and metrics["robustfl-replies"] == 3


def test_masked_rounds_send_the_support_only_with_the_engines_bytes() -> None:
    """Masked training through Flower (round 1 dense, round 2 masked) with top-3 and error feedback:
    the client sends the K support values, byte for byte what the engine's encode sends."""
    from robustfl.algorithms import MaskedTraining
    from robustfl.algorithms.masked import MASK
    from robustfl.compressors import COMPRESSORS, ErrorFeedback
    from robustfl.compressors.base import Message as WireMessage
    from robustfl.engine import phases
    from robustfl.integrations.flower.arrays import wire_bytes
    from robustfl.streams import Streams

    alg = MaskedTraining(density=0.5, masked_rounds=1, dense_rounds=1, track_alignment=False)
    comp = ErrorFeedback(COMPRESSORS.get("topk", k=3))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.randn(40, 4), torch.randint(3, (40,))
    start = ArrayRecord(torch_state_dict={k: v.detach().clone() for k, v in model.state_dict().items()})
    strategy = RobustStrategy(
        "mean", algorithm=alg, compressor=comp, min_train_nodes=1, min_available_nodes=1
    )
    packed = RobustClient(copy_of(model), x, y, algorithm=alg, compressor=comp, batch_size=8, client_id=2)
    raw = RobustClient(copy_of(model), x, y, algorithm=alg, batch_size=8, client_id=2)
    contexts = [Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={}) for _ in "ab"]
    d, ids, state = 15, torch.tensor([2]), phases.init_compressor_state(comp, {"update": torch.zeros(15)}, 1)
    for r in (1, 2):
        instruction = next(iter(strategy.configure_train(r, start, ConfigRecord(), Grid(1))))
        mask = strategy.server_state[MASK]
        support = mask if alg.is_masked(r) else None
        answer, plain = packed.train(instruction, contexts[0]), raw.train(instruction, contexts[1])
        sent = torch.from_numpy(plain.content["arrays"][UPDATE_KEY].numpy())
        assert sent.numel() == (int(mask.sum()) if support is not None else d)
        row = phases.expand({"update": sent.unsqueeze(0)}, support, {"update": d})
        messages, state = phases.encode_parts(comp, row, ids, state, Streams(0), r, support)
        data = wire_bytes(answer.content["arrays"][WIRE_KEY])
        assert data == messages["update"].row(0).to_bytes()
        assert WireMessage.from_bytes(data).d == (8 if support is not None else d)
        arrays, metrics = strategy.aggregate_train(r, [answer])
        assert arrays is not None and metrics["robustfl-dropped"] == 0
        moved = flatten(arrays)[0] != flatten(start)[0]
        assert 0 < int(moved.sum()) <= 3 and (support is None or not bool(moved[~mask].any()))
    assert alg.is_masked(2) and not alg.is_masked(1)
