"""``show_predictions --dataset``: MNIST's join is the README's, unchanged; a dataset whose label is the class's text
(iris) compares it with the predicted class's text and shows class names."""

from consumer.show_predictions import MNIST_QUERIES, format_row, queries_of
from stack.datasets import load


def test_mnists_join_is_the_readmes():
    assert MNIST_QUERIES == queries_of(load("mnist"))
    assert "FROM mnist_test t JOIN mnist_predictions p ON p.source_table = 'mnist_test' AND p.id = t.id" in (
        MNIST_QUERIES.join
    )
    assert "FILTER (WHERE t.label = p.predicted)" in MNIST_QUERIES.totals


def test_a_text_label_is_compared_with_the_predicted_classs_text():
    queries = queries_of(load("iris"))
    assert "SELECT t.id, t.iris_class, p.predicted" in queries.join
    assert "FROM iris_test t JOIN iris_predictions p ON p.source_table = 'iris_test'" in queries.join
    assert "FILTER (WHERE t.iris_class::text = (%(classes)s::text[])[p.predicted + 1])" in queries.totals
    assert "FROM iris_predictions p" in queries.missing


def test_rows_show_the_predicted_classs_name():
    line = format_row((12, "Iris-virginica", 2, 0.93, 4, 120.0), load("iris").classes)
    assert line.split()[:3] == ["12", "Iris-virginica", "Iris-virginica"]
