"""A damaged or hostile image file told as one line naming it: tifffile and Pillow fail on a broken
file with whatever their parser met (ZeroDivisionError for a width of 0, KeyError for a missing tag,
Pillow's DecompressionBombError), which reached the user as a traceback without the file's name."""
from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["reading"]

#: what a decoder raises on bytes it cannot parse (besides ValueError and OSError, which name no file)
_PARSER_ERRORS = (KeyError, TypeError, ZeroDivisionError, AssertionError, IndexError, AttributeError,
                  RuntimeError, EOFError, struct.error)


@contextmanager
def reading(path: str | os.PathLike, what: str = "an image") -> Iterator[None]:
    """Turn a decoder's errors while reading ``path`` into a ValueError that names the file: a parser's
    own exception types, Pillow's decompression-bomb refusal, and a ValueError or OSError whose
    message does not say which file it was (an OSError naming it, such as a missing file, stays)."""
    name = os.fspath(path)
    try:
        yield
    except (ValueError, OSError) as err:
        if name in str(err) or os.path.basename(name) in str(err):
            raise
        raise ValueError(f"{name} cannot be read as {what} (damaged, or not {what}?): {err}") from err
    except _PARSER_ERRORS as err:
        raise ValueError(f"{name} cannot be read as {what} (damaged, or not {what}?): "
                         f"{type(err).__name__}: {err}") from err
    except Exception as err:
        if type(err).__name__ != "DecompressionBombError":  # Pillow's: an Exception, neither OSError nor ValueError
            raise
        raise ValueError(f"{name} is refused by Pillow as a possible decompression bomb ({err}); if the image is "
                         "real, raise PIL.Image.MAX_IMAGE_PIXELS before reading it") from err
