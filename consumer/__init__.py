"""The TensorFlow side: ``python -m consumer.train`` and ``python -m consumer.evaluate``.

Only this package imports tensorflow; only ``consumer.kafka`` imports the Kafka client, and only its
``tfio_source`` imports tensorflow_io.
"""
