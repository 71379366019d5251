"""The two batch decodes (NumPy for the default reading path, TensorFlow for the tfio source) hold the same
rules and give the same output, bit for bit, on valid records and on every kind of malformed one."""

import numpy as np
import pytest
import tensorflow as tf

from consumer.records.codec import decode_batch, encode_records
from consumer.records.tf_decode import decode_csv_batch, decode_kafka_stream_record
from loader.source import load_sample


def csv(values) -> str:
    return ",".join(str(v) for v in values)


def numpy_decode(messages: list[str], keys: list[str]):
    batch = decode_batch([m.encode() for m in messages], [k.encode() for k in keys])
    return batch.images, batch.labels, batch.malformed


def tensorflow_decode(messages: list[str], keys: list[str]):
    images, labels, malformed = decode_csv_batch(tf.constant(messages, tf.string), tf.constant(keys, tf.string))
    return images.numpy(), labels.numpy(), int(malformed)


DECODES = [pytest.param(numpy_decode, id="numpy"), pytest.param(tensorflow_decode, id="tensorflow")]

MALFORMED = [
    (csv([0] * 783), "1"),  # one value short
    (csv([0] * 785), "1"),  # one value too many
    (csv([0] * 783) + ",x", "1"),  # non-numeric text
    (csv([0] * 783) + ",1.5", "1"),  # not an integer
    (csv([0] * 783) + ",-1", "1"),  # negative
    (csv([0] * 783) + ",256", "1"),  # above a byte
    (csv([0] * 783) + ",356", "1"),  # above a byte, 100 modulo 256
    (csv([0] * 783) + ",65636", "1"),  # 100 modulo 65536
    (csv([0] * 783) + ",99999999999999999999999", "1"),  # beyond 64 bits
    (csv([0] * 783) + ",0001", "1"),  # four digits, even if small
    (csv([0] * 783) + ",", "1"),  # empty last value
    ("," + csv([0] * 783), "1"),  # empty first value
    (csv([0] * 391) + ",," + csv([0] * 391), "1"),  # empty value inside
    (" " + csv([0] * 784), "1"),  # stray whitespace
    (csv([0] * 784) + "\n", "1"),  # trailing newline
    ("", "1"),  # empty value
    (csv([0] * 784), ""),  # empty key
    (csv([0] * 784), "seven"),  # non-numeric key
    (csv([0] * 784), "10"),  # label outside the 10 classes
    (csv([0] * 784), "0007"),  # key of four digits
    (csv([0] * 784), "-1"),  # negative key
    ("Struct{id=3}", "Struct{id=3}"),  # a record the transform did not convert
]


@pytest.mark.parametrize("decode", DECODES)
def test_values_are_divided_by_255_into_a_flat_vector_in_record_order(decode):
    values = np.zeros(784, int)
    values[0], values[29], values[783] = 255, 128, 1
    images, labels, malformed = decode([csv(values)], ["7"])
    assert images.shape == (1, 784) and images.dtype == np.float32
    assert images[0, 0] == 1.0
    assert images[0, 29] == pytest.approx(128 / 255)
    assert images[0, 783] == pytest.approx(1 / 255)
    assert labels.tolist() == [7] and labels.dtype == np.int32
    assert malformed == 0


@pytest.mark.parametrize("decode", DECODES)
def test_batch_decode_matches_the_talks_per_message_decode(decode):
    rng = np.random.default_rng(1)
    rows = [rng.integers(0, 256, 784) for _ in range(3)]
    images, labels, _ = decode([csv(r) for r in rows], ["1", "2", "9"])
    for row, image, key, label in zip(rows, images, ["1", "2", "9"], labels, strict=True):
        talk_image, talk_label = decode_kafka_stream_record(tf.constant(csv(row)), tf.constant(key))
        np.testing.assert_allclose(np.stack(talk_image.numpy()), image, rtol=1e-6)
        assert int(talk_label) == label


@pytest.mark.parametrize("decode", DECODES)
@pytest.mark.parametrize("message, key", MALFORMED)
def test_malformed_record_is_skipped_and_counted(decode, message, key):
    good = csv([5] * 784)
    images, labels, malformed = decode([good, message, good], ["3", key, "4"])
    assert labels.tolist() == [3, 4]
    assert malformed == 1
    assert images.shape == (2, 784)


@pytest.mark.parametrize("decode", DECODES)
def test_leading_zeros_of_up_to_three_digits_are_accepted(decode):
    images, labels, malformed = decode([csv(["007"] + ["0"] * 783), csv([0] * 784)], ["07", "007"])
    assert labels.tolist() == [7, 7] and malformed == 0
    assert images[0, 0] == pytest.approx(7 / 255)


@pytest.mark.parametrize("decode", DECODES)
def test_all_malformed_batch_gives_empty_arrays(decode):
    images, labels, malformed = decode(["", "1,2"], ["", "x"])
    assert images.shape == (0, 784) and labels.shape == (0,) and malformed == 2


def test_numpy_and_tensorflow_decodes_are_bit_identical_on_the_sample_and_every_malformed_kind():
    sample = load_sample()["test"]
    messages = [csv(row) for row in sample.images] + [message for message, _ in MALFORMED]
    keys = [str(label) for label in sample.labels] + [key for _, key in MALFORMED]
    order = np.random.default_rng(0).permutation(len(messages))  # bad records spread over the batches
    messages, keys = [messages[i] for i in order], [keys[i] for i in order]
    ours, theirs = numpy_decode(messages, keys), tensorflow_decode(messages, keys)
    assert ours[2] == theirs[2] == len(MALFORMED)
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert ours[0].tobytes() == theirs[0].tobytes()  # bit for bit, not approximately


def test_valid_marks_which_records_were_decoded():
    good = csv([1] * 784).encode()
    batch = decode_batch([good, b"bad", good, None], [b"1", b"2", b"x", b"4"])
    assert batch.valid.tolist() == [True, False, False, False]
    assert batch.labels.tolist() == [1] and batch.malformed == 3


def test_a_large_batch_is_decoded_in_chunks_with_the_same_result():
    good = [csv([i % 256] * 784).encode() for i in range(700)]
    keys = [str(i % 10).encode() for i in range(700)]
    good[300] = b"bad"
    whole = decode_batch(good, keys)
    assert whole.malformed == 1 and len(whole.labels) == 699
    assert whole.labels.tolist() == [i % 10 for i in range(700) if i != 300]


def test_tensorflow_decode_is_traced_once_for_every_batch_size():
    for size in (1, 5, 32, 7):
        tensorflow_decode([csv([1] * 784)] * size, ["2"] * size)
    assert decode_csv_batch.experimental_get_tracing_count() == 1


def test_works_inside_a_dataset_pipeline():
    messages = tf.data.Dataset.from_tensor_slices(([csv([1] * 784)] * 5, ["2"] * 5))
    batches = list(messages.batch(2).map(decode_csv_batch))
    assert [int(tf.size(labels)) for _, labels, _ in batches] == [2, 2, 1]


def test_encoded_records_decode_back_to_the_same_digits_and_labels():
    split = load_sample()["test"]
    images, labels = split.images[:300], split.labels[:300]
    records = encode_records(images, labels)
    decoded = decode_batch([value for _, value in records], [key for key, _ in records])
    assert decoded.malformed == 0
    assert decoded.labels.tolist() == labels.tolist()
    assert np.array_equal(np.rint(decoded.images * 255).astype(np.uint8), images)


def test_an_encoded_record_is_the_connectors_text():
    image = np.zeros((28, 28), np.uint8)
    image[0, 0], image[27, 27] = 255, 7
    [(key, value)] = encode_records(image[None], np.array([4]))
    assert key == b"4"
    assert value == ("255," + "0," * 782 + "7").encode()
