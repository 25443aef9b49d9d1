"""minflow: a toy workflow engine that embeds telemetry-sdk the way Parsl does.

>>> import minflow
>>> config = minflow.Config(executors=[minflow.ThreadPoolExecutor()], usage_tracking=3)
>>> with minflow.DataFlowKernel(config) as dfk:
...     future = dfk.submit(pow, 2, 10)
"""

from __future__ import annotations

from .config import PRODUCT, Config
from .dflow import DataFlowKernel
from .executors import HighThroughputExecutor, ThreadPoolExecutor
from .providers import LocalProvider, SlurmProvider

__all__ = [
    "PRODUCT",
    "Config",
    "DataFlowKernel",
    "HighThroughputExecutor",
    "LocalProvider",
    "SlurmProvider",
    "ThreadPoolExecutor",
]
__version__ = PRODUCT.version
