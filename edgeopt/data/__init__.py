"""Calibration and evaluation data: datasets from files, images, iterables or synthesis; feeds; streams."""
