"""``python -m loader``: read MNIST (the bundled sample or IDX files) and write it into PostgreSQL."""
