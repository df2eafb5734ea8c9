"""Datasets: the synthetic default, the VoxCeleb/HQ-VoxCeleb layouts, the packed cache and torch datasets."""
