"""The ClientApp: robustfl's FedAvg client step; the first ``byzantine-nodes`` nodes send garbage."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from robustfl.integrations.flower import UPDATE_KEY, RobustClient
from robustfl_example.task import compressor, model, node_data

app = ClientApp()
_clients: dict[int, RobustClient] = {}


@app.train()
def train(msg: Message, context: Context) -> Message:
    pid = int(context.node_config["partition-id"])
    if pid < int(context.run_config["byzantine-nodes"]):  # a Byzantine node: a huge random "update"
        size = sum(a.numpy().size for a in msg.content["arrays"].values())
        junk = np.random.default_rng(pid).normal(0, 1e4, size).astype("float32")
        arrays = ArrayRecord(array_dict={UPDATE_KEY: Array(junk)})
        content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 10**9})})
        return Message(content=content, reply_to=msg)
    if pid not in _clients:
        x, y = node_data(pid, int(context.node_config["num-partitions"]))
        _clients[pid] = RobustClient(
            model(),
            x,
            y,
            algorithm="fedavg",
            compressor=compressor(dict(context.run_config)),
            batch_size=32,
            lr=float(context.run_config["lr"]),
            client_id=pid,
        )
    return _clients[pid].train(msg, context)
