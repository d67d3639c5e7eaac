"""Plots of a run (curves.png, confusion.png) and the Markdown comparison of runs."""
