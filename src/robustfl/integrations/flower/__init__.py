"""Flower integration (``pip install 'robustfl[flower]'``, flwr 1.42): robust aggregation as a strategy.

* :class:`RobustStrategy` — any robustfl rule, pipeline and compressor on Flower's Message API;
* :class:`RobustClient` — a robustfl algorithm's client step inside a Flower ``ClientApp``.

docs/flower.md shows a server app, a client app and a local deployment.
"""

try:
    import flwr  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the extra
    raise ImportError("robustfl.integrations.flower needs Flower: pip install 'robustfl[flower]'") from err

from robustfl.integrations.flower.arrays import UPDATE_KEY, WIRE_KEY
from robustfl.integrations.flower.client import RobustClient
from robustfl.integrations.flower.strategy import RobustStrategy

__all__ = ["UPDATE_KEY", "WIRE_KEY", "RobustClient", "RobustStrategy"]
