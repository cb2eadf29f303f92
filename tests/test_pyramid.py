"""Choosing the level of a multiscale time-lapse and placing it (`data.pyramid`, no napari)."""
from __future__ import annotations

import pytest

from napari_vos.data.pyramid import frame_shapes, level_for_labels, level_for_side, level_scale

LEVELS = [(10, 2048, 1536), (10, 1024, 768), (10, 512, 384), (10, 256, 192)]


def test_frame_shapes_drop_the_colour_axis_and_mark_levels_that_are_not_the_video():
    assert frame_shapes([(5, 64, 48, 3), (5, 32, 24, 3)], rgb=True) == [(5, 64, 48), (5, 32, 24)]
    assert frame_shapes([(5, 64, 48), (4, 32, 24), (5, 2, 32, 24)], rgb=False) == [(5, 64, 48), None, None]
    assert frame_shapes([(64, 48)], rgb=False) == [None]


def test_labels_pick_the_level_they_match_whole_or_one_frame():
    assert level_for_labels((10, 512, 384), LEVELS) == 2
    assert level_for_labels((1024, 768), LEVELS) == 1
    assert level_for_labels((10, 2048, 1536), LEVELS) == 0
    assert level_for_labels((10, 500, 384), LEVELS) is None
    assert level_for_labels((9, 512, 384), LEVELS) is None


@pytest.mark.parametrize(("max_side", "level"), [(1024, 1), (1000, 1), (1025, 0), (512, 2), (100, 3),
                                                 (None, 0), (4096, 0)])
def test_the_coarsest_level_that_still_has_the_working_resolution(max_side, level):
    assert level_for_side(LEVELS, max_side) == level


def test_a_level_s_pixels_cover_the_downsampling_factor_of_the_finest():
    assert level_scale((2.0, 0.5, 0.25), (10, 2048, 1536), (10, 512, 384)) == [2.0, 2.0, 1.0]
    assert level_scale((1.0, 1.0, 1.0), (10, 99, 50), (10, 33, 25)) == [1.0, 3.0, 2.0]
    assert level_scale((3.0, 1.0, 1.0), (10, 64, 64), (10, 64, 64)) == [3.0, 1.0, 1.0]
