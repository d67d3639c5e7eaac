"""Inference apart from training (README "How it is built"); nothing here imports ``engine``."""
