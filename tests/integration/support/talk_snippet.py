"""The talk's TensorFlow consumer snippet, run as written to its last line, ``model.evaluate(test_ds)``.

Usage, from the repository root: python -m tests.integration.support.talk_snippet BOOTSTRAP GROUP [MODEL]. Run in
its own process: tfio allows one Kafka consumer a process. ``MODEL`` is a model file ``python -m consumer.train``
saved; without it a stand-in model (untrained, the same flat input) is evaluated. Prints the count of records
``model.evaluate`` saw, and with ``MODEL`` the accuracy it printed; Keras' progress bar goes to stderr.
"""

import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_io as tfio  # noqa: E402

from consumer.kafka.client import KafkaClient  # noqa: E402


def records_evaluated(model) -> int:
    """The records the last ``evaluate`` saw: Keras' loss mean counts one a record."""
    return int(next(metric for metric in model.metrics if metric.name == "loss").count.numpy())


def main() -> None:
    KAFKA_SERVERS, KAFKA_CONSUMER_GROUP = sys.argv[1], sys.argv[2]
    MODEL_FILE = sys.argv[3] if len(sys.argv) > 3 else None
    KAFKA_TEST_TOPIC = "tf.public.mnist_test"
    KAFKA_STREAM_TIMEOUT = 9000
    NUM_COLUMNS = 784
    BATCH_SIZE = 64

    # The additions: librdkafka 1.5 (inside tfio 0.37.1) cannot ask a Kafka 4 broker for the earliest offset; and
    # the model the talk evaluates, ours as consumer.train saved it (it takes the decoded 784 values as they come).
    KafkaClient.of(KAFKA_SERVERS).seed_group_offsets(KAFKA_CONSUMER_GROUP, KAFKA_TEST_TOPIC)
    if MODEL_FILE:
        model = keras.models.load_model(MODEL_FILE)
    else:
        model = keras.Sequential([keras.Input((NUM_COLUMNS,)), keras.layers.Dense(10, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    # --- the talk's snippet, unchanged ---
    # define function for decoding Kafka records
    def decode_kafka_stream_record(message, key):
        img_int = tf.io.decode_csv(message, [[0.0] for i in range(NUM_COLUMNS)])
        img_norm = tf.cast(img_int, tf.float32) / 255.0
        label_int = tf.strings.to_number(key, out_type=tf.dtypes.int32)
        return (img_norm, label_int)

    # define Kafka data stream
    test_ds = tfio.experimental.streaming.KafkaGroupIODataset(
        topics=[KAFKA_TEST_TOPIC],
        group_id=KAFKA_CONSUMER_GROUP,
        servers=KAFKA_SERVERS,
        stream_timeout=KAFKA_STREAM_TIMEOUT,
        configuration=["session.timeout.ms=10000", "max.poll.interval.ms=10000", "auto.offset.reset=earliest"],
    )
    # read batches of Kafka records
    test_ds = test_ds.map(decode_kafka_stream_record)
    test_ds = test_ds.batch(BATCH_SIZE)
    # make predictions on the data samples
    with contextlib.redirect_stdout(sys.stderr):  # Keras' progress bar; stdout carries only the figures below
        model.evaluate(test_ds)
    # --- end of the snippet ---

    records = records_evaluated(model)
    if MODEL_FILE:
        print(records, f"{float(model.get_metrics_result()['accuracy']):.4f}")
    else:
        print(records)


if __name__ == "__main__":
    main()
