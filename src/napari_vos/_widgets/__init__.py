"""napari dock widgets: the only place that imports napari or Qt."""
