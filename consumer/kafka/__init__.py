"""Kafka I/O of the consumer, the only place in ``consumer`` that imports confluent_kafka (or tensorflow_io).

* ``client``: ``KafkaClient``, the settings object every command builds once from its flags, with the broker
  requests (topics, group offsets) and the one-line ``SourceError``;
* ``reader``: ``CommittingReader`` and its ``ReadOptions``: raw batches, offsets committed when the caller says;
* ``batches``: ``open_batches``, decoded batches from either source (ours or tfio's, ``tfio_source``);
* ``publisher``: the transactional ``Publisher`` of ``consumer.predict``;
* ``writer``: ``TopicWriter``, plain records written to a topic of our own.
"""
