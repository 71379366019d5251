import numpy as np
import pytest
import tensorflow as tf

from consumer.decode import decode_csv_batch, decode_kafka_stream_record


def csv(values) -> str:
    return ",".join(str(v) for v in values)


def decode(messages: list[str], keys: list[str]):
    images, labels, malformed = decode_csv_batch(tf.constant(messages), tf.constant(keys))
    return images.numpy(), labels.numpy(), int(malformed)


def test_values_are_divided_by_255_and_laid_out_row_major():
    values = np.zeros(784, int)
    values[0], values[29], values[783] = 255, 128, 1
    images, labels, malformed = decode([csv(values)], ["7"])
    assert images.shape == (1, 28, 28, 1) and images.dtype == np.float32
    assert images[0, 0, 0, 0] == 1.0
    assert images[0, 1, 1, 0] == pytest.approx(128 / 255)
    assert images[0, 27, 27, 0] == pytest.approx(1 / 255)
    assert labels.tolist() == [7] and labels.dtype == np.int32
    assert malformed == 0


def test_batch_decode_matches_the_talks_per_message_decode():
    rng = np.random.default_rng(1)
    rows = [rng.integers(0, 256, 784) for _ in range(3)]
    images, labels, _ = decode([csv(r) for r in rows], ["1", "2", "9"])
    for row, image, key, label in zip(rows, images, ["1", "2", "9"], labels, strict=True):
        talk_image, talk_label = decode_kafka_stream_record(tf.constant(csv(row)), tf.constant(key))
        np.testing.assert_allclose(np.stack(talk_image.numpy()), image.reshape(784), rtol=1e-6)
        assert int(talk_label) == label


@pytest.mark.parametrize(
    "message, key",
    [
        (csv([0] * 783), "1"),  # one value short
        (csv([0] * 785), "1"),  # one value too many
        (csv([0] * 783) + ",x", "1"),  # non-numeric text
        (csv([0] * 783) + ",1.5", "1"),  # not an integer
        (csv([0] * 783) + ",-1", "1"),  # negative
        (csv([0] * 783) + ",256", "1"),  # above a byte
        (csv([0] * 783) + ",", "1"),  # empty last value
        (" " + csv([0] * 784), "1"),  # stray whitespace
        ("", "1"),  # empty value
        (csv([0] * 784), ""),  # empty key
        (csv([0] * 784), "seven"),  # non-numeric key
        (csv([0] * 784), "10"),  # label outside the 10 classes
        ("Struct{id=3}", "Struct{id=3}"),  # a record the transform did not convert
    ],
)
def test_malformed_record_is_skipped_and_counted(message, key):
    good = csv([5] * 784)
    images, labels, malformed = decode([good, message, good], ["3", key, "4"])
    assert labels.tolist() == [3, 4]
    assert malformed == 1
    assert images.shape == (2, 28, 28, 1)


def test_all_malformed_batch_gives_empty_tensors():
    images, labels, malformed = decode(["", "1,2"], ["", "x"])
    assert images.shape == (0, 28, 28, 1) and labels.shape == (0,) and malformed == 2


def test_works_inside_a_dataset_pipeline():
    messages = tf.data.Dataset.from_tensor_slices(([csv([1] * 784)] * 5, ["2"] * 5))
    batches = list(messages.batch(2).map(decode_csv_batch))
    assert [int(tf.size(labels)) for _, labels, _ in batches] == [2, 2, 1]
