"""The TensorFlow decodes: pure functions, no I/O, for records that arrive as tensors (the tfio source).

``decode_csv_batch`` decodes a whole batch at once (batch first, then decode: several times faster than a
per-message ``decode_csv``) and skips malformed records instead of failing the batch, with the same rules
and output as the NumPy ``consumer.records.codec.decode_batch`` of the default reading path
(tests/unit/consumer/records/test_codec.py checks both on the same records). ``decode_kafka_stream_record`` is
the talk's per-message function, kept verbatim for compatibility.

Both know MNIST's records only (784 bytes, ten classes): the commands refuse ``--source tfio`` for another
dataset in one line (``consumer.cli.check_source``), whose records the NumPy decode reads
(``consumer.records.codec.RecordFormat``).
"""

from __future__ import annotations

import tensorflow as tf

from consumer.records.codec import NUM_CLASSES, NUM_COLUMNS

# Integers of 1-3 digits, comma-separated, nothing else (RE2, full match); the count of values is checked
# apart, because RE2 refuses a repetition of {783} around {1,3}.
VALUE_PATTERN = r"[0-9]{1,3}(?:,[0-9]{1,3})*"
KEY_PATTERN = r"[0-9]{1,3}"


def decode_kafka_stream_record(message, key):
    """The talk's decoder, one message at a time: 784 floats / 255 and the key as int32."""
    img_int = tf.io.decode_csv(message, [[0.0] for i in range(NUM_COLUMNS)])
    img_norm = tf.cast(img_int, tf.float32) / 255.0
    label_int = tf.strings.to_number(key, out_type=tf.dtypes.int32)
    return (img_norm, label_int)


# One trace for every batch size: without the signature each new size (live evaluation hands over partial
# batches) re-traced the function, 0.1-0.3 s each.
@tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)])
def decode_csv_batch(messages: tf.Tensor, keys: tf.Tensor):
    """Decode a batch of ``(message, key)`` strings into images, labels and the count of skipped records.

    Returns ``images`` float32 ``(n, 784)`` in [0, 1] (flat, as every model takes them), ``labels`` int32
    ``(n,)`` and ``malformed``, an int32 scalar: records whose value is not 784 integers in 0..255 or whose key
    is not a label in 0..9 (empty, non-numeric, wrong count) are left out and counted, never raised.

    >>> images, labels, malformed = decode_csv_batch(
    ...     tf.constant([",".join(["255"] * 784), "1,2,3", ""]), tf.constant(["7", "7", "7"]))
    >>> images.shape.as_list(), labels.numpy().tolist(), int(malformed), float(images[0, 0])
    ([1, 784], [7], 2, 1.0)
    """
    # The cheap regex first (only digits and commas, 1-3 digits a value), then the count from the split that
    # decoding needs anyway: counting commas with regex_replace cost more than all the rest together.
    well_formed = tf.strings.regex_full_match(messages, VALUE_PATTERN) & tf.strings.regex_full_match(keys, KEY_PATTERN)
    tokens = tf.strings.split(tf.boolean_mask(messages, well_formed), ",")
    keys = tf.boolean_mask(keys, well_formed)
    right_count = tokens.row_lengths() == NUM_COLUMNS
    tokens = tf.ragged.boolean_mask(tokens, right_count)
    keys = tf.boolean_mask(keys, right_count)
    pixels = tf.reshape(tf.strings.to_number(tokens.flat_values, tf.int32), [-1, NUM_COLUMNS])
    labels = tf.strings.to_number(keys, tf.int32)
    in_range = (tf.reduce_max(pixels, axis=1) <= 255) & (labels < NUM_CLASSES)
    pixels = tf.boolean_mask(pixels, in_range)
    labels = tf.boolean_mask(labels, in_range)
    images = tf.cast(pixels, tf.float32) / 255.0
    malformed = tf.size(well_formed) - tf.size(labels)
    return images, labels, malformed
