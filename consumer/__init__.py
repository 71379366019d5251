"""The TensorFlow side: ``python -m consumer.train`` and ``python -m consumer.evaluate``.

Only this package imports tensorflow; only ``consumer.kafka_source`` imports tensorflow_io.
"""
