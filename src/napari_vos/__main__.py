"""`python -m napari_vos ...` is the `napari-vos` command (for environments without the console script on PATH)."""
from __future__ import annotations

import sys

from napari_vos.cli import main

if __name__ == "__main__":
    sys.exit(main())
