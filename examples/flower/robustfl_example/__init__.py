"""A Flower app whose aggregation is a robustfl rule and whose uploads are robustfl wire bytes."""
