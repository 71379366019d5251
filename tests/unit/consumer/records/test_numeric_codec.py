"""A numeric dataset's records (iris: four measurements, three classes) decode to their float values; every kind
of malformed record is left out and counted, never raised; MNIST's format is the default and unchanged."""

import numpy as np
import pytest

from consumer.records.codec import MNIST_FORMAT, RecordFormat, decode_batch, encode_numbers
from stack.datasets import load

IRIS = RecordFormat(4, 3, image=False)

MALFORMED = [
    (b"5.1,3.5,1.4", b"0"),  # one value short
    (b"5.1,3.5,1.4,0.2,9", b"0"),  # one value too many
    (b"5.1,3.5,,0.2", b"0"),  # empty value
    (b"5.1,3.5,1.4,NaN", b"0"),  # not a number
    (b"5.1,3.5,1.4,nan", b"0"),
    (b"5.1,3.5,1.4,Infinity", b"0"),  # not finite
    (b"5.1,3.5,1.4,1e999", b"0"),  # overflows to infinity
    (b"5.1,3.5,1.4,1e39", b"0"),  # beyond float32
    (b"5.1,3.5,1.4,0x1", b"0"),  # not decimal
    (b"5.1,3.5,1.4,1_0", b"0"),  # Python's digit separator is not the transform's text
    (b" 5.1,3.5,1.4,0.2", b"0"),  # stray whitespace
    (b"", b"0"),  # empty value
    (None, b"0"),  # null value (a tombstone)
    (b"5.1,3.5,1.4,0.2", b"3"),  # class index outside the three classes
    (b"5.1,3.5,1.4,0.2", b"-1"),  # negative key
    (b"5.1,3.5,1.4,0.2", b"Iris-setosa"),  # the class name, not its index
    (b"5.1,3.5,1.4,0.2", b""),  # empty key
    (b"5.1,3.5,1.4,0.2", None),  # null key
]


def test_numbers_decode_as_they_are_in_record_order():
    batch = decode_batch([b"5.1,3.5,1.4,0.2", b"-1,+2,.5,3E2"], [b"0", b"2"], IRIS)
    assert batch.images.dtype == np.float32 and batch.images.shape == (2, 4)
    np.testing.assert_allclose(batch.images, [[5.1, 3.5, 1.4, 0.2], [-1, 2, 0.5, 300]], rtol=1e-6)
    assert batch.labels.tolist() == [0, 2] and batch.labels.dtype == np.int32
    assert batch.malformed == 0


@pytest.mark.parametrize("value, key", MALFORMED)
def test_a_malformed_record_is_left_out_and_counted(value, key):
    good = b"6.3,3.3,6.0,2.5"
    batch = decode_batch([good, value, good], [b"2", key, b"1"], IRIS)
    assert batch.valid.tolist() == [True, False, True]
    assert batch.malformed == 1
    assert batch.labels.tolist() == [2, 1]
    assert batch.images.shape == (2, 4)


def test_a_batch_of_only_malformed_records_is_empty_not_an_error():
    batch = decode_batch([b"x", None], [b"0", b"0"], IRIS)
    assert batch.images.shape == (0, 4) and batch.labels.shape == (0,) and batch.malformed == 2


def test_encoded_numbers_decode_back_exactly():
    rows = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    labels = np.arange(50) % 3
    records = encode_numbers(rows, labels)
    batch = decode_batch([value for _, value in records], [key for key, _ in records], IRIS)
    np.testing.assert_array_equal(batch.images, rows)
    assert batch.labels.tolist() == labels.tolist()


def test_formats_of_the_built_in_datasets():
    assert RecordFormat.of(load("mnist")) == MNIST_FORMAT
    assert RecordFormat.of(load("iris")) == IRIS


def test_an_image_format_of_other_counts_takes_the_byte_path():
    tiny = RecordFormat(4, 2, image=True)
    batch = decode_batch([b"0,255,0,51", b"0,0,0", b"0,0,0,0"], [b"1", b"1", b"2"], tiny)
    np.testing.assert_allclose(batch.images, [[0, 1, 0, 0.2]], rtol=1e-6)
    assert batch.valid.tolist() == [True, False, False]


def test_pack_keeps_numbers_as_float32_and_pixels_as_bytes():
    values = np.array([[0.25, -3.5, 1e6, 7.0]], np.float32)
    assert IRIS.pack(values).dtype == np.float32
    np.testing.assert_array_equal(IRIS.unpack(IRIS.pack(values)), values)
    pixels = np.array([[0, 1 / 255, 1.0]], np.float32)
    assert MNIST_FORMAT.pack(pixels).tolist() == [[0, 1, 255]]
    np.testing.assert_array_equal(MNIST_FORMAT.unpack(MNIST_FORMAT.pack(pixels)), pixels)
