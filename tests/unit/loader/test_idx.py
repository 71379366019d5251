import gzip
import struct

import numpy as np
import pytest

from loader.idx import IdxError, parse_idx_images, parse_idx_labels, read_idx, read_idx_pair


def images_file(count: int, rows: int = 28, cols: int = 28, fill: int = 0) -> bytes:
    return struct.pack(">IIII", 0x803, count, rows, cols) + bytes([fill]) * (count * rows * cols)


def labels_file(labels: list[int]) -> bytes:
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def test_images_parse_to_rows_of_784_bytes():
    data = images_file(2)[:16] + bytes(range(256)) * 6 + bytes(1568 - 1536)
    images = parse_idx_images(data)
    assert images.shape == (2, 784)
    assert images.dtype == np.uint8
    assert images[0, 255] == 255


def test_labels_parse_in_order():
    assert parse_idx_labels(labels_file([5, 0, 4, 1])).tolist() == [5, 0, 4, 1]


def test_wrong_magic_number_names_file_and_magic():
    with pytest.raises(IdxError, match=r"train-images: wrong magic number 0x00000801, expected 0x00000803"):
        parse_idx_images(labels_file([1, 2]), "train-images")


def test_truncated_images_say_how_many_bytes_are_missing():
    with pytest.raises(IdxError, match=r"imgs: file is truncated: 1567 data bytes, the header announces 1568"):
        parse_idx_images(images_file(2)[:-1], "imgs")


def test_truncated_header_is_reported():
    with pytest.raises(IdxError, match="file is truncated"):
        parse_idx_images(struct.pack(">II", 0x803, 1), "imgs")


def test_file_shorter_than_magic_is_reported():
    with pytest.raises(IdxError, match="too short for an IDX header"):
        parse_idx_labels(b"\x00", "labels")


def test_trailing_bytes_are_reported():
    with pytest.raises(IdxError, match="3 unexpected bytes"):
        parse_idx_labels(labels_file([1]) + b"xyz", "labels")


def test_unexpected_dimensions_are_reported():
    with pytest.raises(IdxError, match="images are 32x32, expected 28x28"):
        parse_idx_images(images_file(1, 32, 32), "imgs")


def test_gzipped_and_plain_files_read_the_same(tmp_path):
    (tmp_path / "plain").write_bytes(images_file(1, fill=9))
    (tmp_path / "zipped.gz").write_bytes(gzip.compress(images_file(1, fill=9)))
    assert read_idx(tmp_path / "plain") == read_idx(tmp_path / "zipped.gz")


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(images_file(3))[:40])
    with pytest.raises(IdxError, match=r"train-images-idx3-ubyte.gz: corrupt gzip data"):
        read_idx(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(IdxError, match=r"nothing-here: file not found"):
        read_idx(tmp_path / "nothing-here")


def test_image_label_count_mismatch_is_reported(tmp_path):
    (tmp_path / "images").write_bytes(images_file(3))
    (tmp_path / "labels").write_bytes(labels_file([1, 2]))
    with pytest.raises(IdxError, match="3 images but labels has 2 labels"):
        read_idx_pair(tmp_path / "images", tmp_path / "labels")
