"""Datasets: UCF-101 layout and splits, synthetic videos, preparation, sampling and transforms."""
