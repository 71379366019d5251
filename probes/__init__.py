"""What tests and benchmarks share against a running stack: rows written, topics read, slots dropped.

* ``probes.rows``: marked rows (``marked_pixels``, ``prefix_of``, ``csv_of``), ``NumberedRows`` written at a pace
  through the loader's COPY, ``insert`` and ``execute`` as the table owner.
* ``probes.topics``: an independent confluent-kafka reader (``Record``, ``end_offsets``, ``read_from``,
  ``numbers_on_topic``, ``values_starting_with``), plus producing and group offsets for tests that need them.
* ``probes.database``: ``query_one``, ``drop_slot``.
* ``probes.deadline``: ``poll``, the one deadline loop.

Settings come from ``stack.config``; nothing here reads the environment.
"""
