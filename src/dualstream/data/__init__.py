"""Splits, sampling, the clip cutter (workers) and its device twin, datasets and augmentation."""
