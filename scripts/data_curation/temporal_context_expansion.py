"""The design documents' `scripts/data_curation/temporal_context_expansion.py`: `frameloom expand`, same flags."""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # noqa: E401, E702, I001
from frameloom.aliases import alias  # noqa: E402

alias("expand")
