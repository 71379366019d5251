"""Topics a test makes for itself, so its records never mix with the demo's or another test's."""

from __future__ import annotations

import uuid

from stack.kafka import ensure_topics


def topics_of_the_test(pipeline, name: str) -> tuple[str, str]:
    """A new input topic and a new output topic, ``test.<name>.in.<suffix>`` and ``test.<name>.out.<suffix>``,
    with the stack's partition count."""
    suffix = uuid.uuid4().hex[:8]
    source, target = f"test.{name}.in.{suffix}", f"test.{name}.out.{suffix}"
    ensure_topics(pipeline.config, (source, target))
    return source, target
