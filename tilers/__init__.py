"""Producers of 3D Tiles (city models, point clouds, terrain). Not built yet."""
