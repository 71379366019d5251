"""The talk's TensorFlow consumer snippet, run as written; prints how many records it evaluated.

Usage, from the repository root: python -m tests.integration.support.talk_snippet BOOTSTRAP GROUP. Run in its own
process: tfio allows one Kafka consumer a process.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_io as tfio  # noqa: E402

from consumer.kafka.client import KafkaClient  # noqa: E402


def main() -> None:
    KAFKA_SERVERS, KAFKA_CONSUMER_GROUP = sys.argv[1], sys.argv[2]
    KAFKA_TEST_TOPIC = "tf.public.mnist_test"
    KAFKA_STREAM_TIMEOUT = 9000
    NUM_COLUMNS = 784
    BATCH_SIZE = 64

    # The one addition: librdkafka 1.5 (inside tfio 0.37.1) cannot ask a Kafka 4 broker for the earliest offset.
    KafkaClient.of(KAFKA_SERVERS).seed_group_offsets(KAFKA_CONSUMER_GROUP, KAFKA_TEST_TOPIC)
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
    # --- end of the snippet; the talk then calls model.evaluate(test_ds) ---

    evaluated = 0
    for images, labels in test_ds:
        model.evaluate(images, labels, verbose=0)
        evaluated += int(tf.size(labels))
    print(evaluated)


if __name__ == "__main__":
    main()
