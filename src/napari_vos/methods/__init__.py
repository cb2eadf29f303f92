"""Video object segmentation methods, one module per paper, and their registry."""
