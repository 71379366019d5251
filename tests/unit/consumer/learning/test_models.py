import numpy as np

from consumer.learning.models import build_model


def synthetic_digits(n: int, seed: int = 0):
    """Ten separable classes: class k lights up row band k of the image; flat ``(n, 784)``, as records decode."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype("int32")
    images = rng.uniform(0, 0.2, (n, 28, 28)).astype("float32")
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label : 4 + 2 * label, :] = 1.0
    return images.reshape(n, 784), labels


def test_takes_the_flat_record_and_shapes_it_inside():
    import keras

    model = build_model()
    assert model.input_shape == (None, 784)
    assert isinstance(model.layers[0], keras.layers.Reshape) and model.layers[0].output.shape == (None, 28, 28, 1)


def test_outputs_a_probability_per_class():
    model = build_model()
    images, _ = synthetic_digits(4)
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_learns_separable_classes():
    images, labels = synthetic_digits(600)
    model = build_model()
    model.fit(images[:500], labels[:500], epochs=3, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(images[500:], labels[500:], verbose=0)
    assert accuracy > 0.9


def test_saved_model_loads_and_predicts_the_same(tmp_path):
    import keras

    images, labels = synthetic_digits(64)
    model = build_model()
    model.fit(images, labels, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5)
