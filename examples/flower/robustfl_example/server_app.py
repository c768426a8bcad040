"""The ServerApp: RobustStrategy with a robustfl rule; central evaluation on the test set."""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from robustfl.engine.functional import FlatModel
from robustfl.integrations.flower import RobustStrategy
from robustfl.integrations.flower.arrays import flatten
from robustfl_example.task import compressor, model, test_data

app = ServerApp()


def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
    net = model().eval()
    flat = FlatModel(net)
    x, y = test_data()
    with torch.no_grad():
        logits = flat.logits(flatten(arrays)[0], x)
    accuracy = float((logits.argmax(1) == y).float().mean())
    print(f"robustfl example: round {server_round}: test accuracy {accuracy:.3f}", flush=True)
    return MetricRecord({"accuracy": accuracy})


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = dict(context.run_config)
    nodes = len(list(grid.get_node_ids())) or 4
    strategy = RobustStrategy(
        str(cfg["aggregator"]),
        f=int(cfg["f"]),
        compressor=compressor(cfg),
        fraction_evaluate=0.0,
        min_train_nodes=max(nodes, 2),
        min_available_nodes=max(nodes, 2),
    )
    start = ArrayRecord(torch_state_dict=model().state_dict())
    strategy.start(
        grid=grid, initial_arrays=start, num_rounds=int(cfg["num-server-rounds"]), evaluate_fn=evaluate
    )
