"""Small checks of user-given values shared by the engine, the frame source and the methods (numpy only)."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["whole_number"]


def whole_number(value: Any) -> bool:
    """A Python or numpy integer, and not a bool (True would pass as 1): a frame number, a size in
    pixels, a channel index. Floats such as 2.0 and strings such as "2" are not."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
