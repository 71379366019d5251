"""Waiting with a deadline: what tests and benchmarks use instead of bare sleeps (``poll``: the stack's own
``wait_until``, one deadline loop for the whole project)."""

from __future__ import annotations

from stack.processes import wait_until as poll

__all__ = ["poll"]
