"""The postline CDK stack and its constructs."""

import sys
from pathlib import Path

# The library's dependency-free modules (postline.queue_names) are the stack's too: one list of names for both.
# Appended, so an installed postline (the venv's editable install is this very folder) is found first.
_LIBRARY = str(Path(__file__).resolve().parents[2] / "layers" / "common")
if _LIBRARY not in sys.path:
    sys.path.append(_LIBRARY)
