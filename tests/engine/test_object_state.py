import enum

import numpy as np
import torch

from robustfl.engine.state import load_object_state, object_state


class Mode(enum.Enum):
    A = "a"
    B = "b"


class Inner:
    def __init__(self) -> None:
        self.memory = torch.zeros(3)
        self.gen = torch.Generator().manual_seed(5)


class Outer:
    def __init__(self) -> None:
        self.k = 2
        self.history = [torch.ones(2), (1, "a")]
        self.table = {"x": torch.arange(3)}
        self.inner = Inner()
        self.schedule = lambda r: r
        self.counts = np.zeros(3)
        self.mode = Mode.A


def mutate(o: Outer) -> None:
    o.mode = Mode.B if o.k == 2 else Mode.A
    o.k += 1
    o.history[0].mul_(3)
    o.table["x"] = o.table["x"] + 1
    o.inner.memory.add_(torch.rand(3, generator=o.inner.gen))
    o.counts += 1


def test_round_trip_restores_state_in_place_and_is_a_copy(tmp_path: object) -> None:
    obj = Outer()
    mutate(obj)
    torch.save(object_state(obj), f"{tmp_path}/state.pt")
    snap = torch.load(f"{tmp_path}/state.pt", weights_only=True)
    inner = obj.inner
    mutate(obj)
    after_one = (obj.k, obj.history[0].clone(), obj.table["x"].clone(), obj.inner.memory.clone())
    load_object_state(obj, snap)
    assert obj.inner is inner and obj.k == 3 and obj.history[1] == (1, "a")
    assert obj.mode is Mode.B and isinstance(obj.counts, np.ndarray) and obj.counts.tolist() == [1, 1, 1]
    torch.testing.assert_close(obj.history[0], torch.full((2,), 3.0))
    mutate(obj)
    assert obj.k == after_one[0]
    for got, want in zip((obj.history[0], obj.table["x"], obj.inner.memory), after_one[1:], strict=True):
        assert torch.equal(got, want)
    assert "schedule" not in snap


def test_objects_with_state_dict_use_it() -> None:
    layer = torch.nn.Linear(2, 2)
    snap = object_state(layer)
    with torch.no_grad():
        layer.weight.zero_()
    load_object_state(layer, snap)
    assert torch.equal(layer.weight, snap["__state_dict__"]["__dict__"]["weight"])
