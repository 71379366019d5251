"""Dataset descriptions (``datasets/<name>.toml``) and what derives from them: names, SQL, connector registrations.

Pure: reads the TOML and the connector JSON templates only (no Kafka, TensorFlow or database client).

>>> from stack.datasets import load
>>> load("iris").contract.train
'tf.public.iris_train'
"""

from stack.datasets.description import DATASETS_DIR, Dataset, DatasetError, Feature, available, load

__all__ = ["DATASETS_DIR", "Dataset", "DatasetError", "Feature", "available", "load"]
