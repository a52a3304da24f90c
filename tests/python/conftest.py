"""Collection rules for tests/python.

test_well_export.py needs The Well's loader, which imports torch: only the venv of
``THERMALIZER_TORCH_PYTHON`` has both, and only tests/well_export.rs sets ``THERMALIZER_WELL``.
Other harnesses run this whole folder with another Python and count a skip as a failure, so
without ``THERMALIZER_WELL`` the module is not collected at all.
"""

import os

collect_ignore = [] if os.environ.get("THERMALIZER_WELL") else ["test_well_export.py"]
