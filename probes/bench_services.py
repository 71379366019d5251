"""Services a benchmark starts beside the stack's own, named once so the benchmark and the test that checks it
cleaned up after itself mean the same process."""

from __future__ import annotations

from stack import connect
from stack.jvm_service import JvmService

#: bench.delivery_bench's own Connect worker: the stack's main class and heap, its own files (config, log, pid).
DELIVERY_WORKER = JvmService(
    "bench-connect", connect.SERVICE.main_class, connect.SERVICE.config_name, connect.SERVICE.heap
)
