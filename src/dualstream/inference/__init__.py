"""Inference apart from training: the model package, predictors (torch and ONNX runtimes), predict, live,
timeline, explain and export. Nothing here imports ``engine``."""
