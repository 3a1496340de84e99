"""Datasets, metrics and benchmarks that drive the product from the outside."""
