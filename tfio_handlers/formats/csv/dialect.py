"""The ``text/csv`` media type this codec speaks: its name, its aliases and its ``header`` parameter."""

from __future__ import annotations

from ...errors import BadRequest
from ...media import MediaType

__all__ = ["ALIASES", "MEDIA_TYPE", "header_present"]

MEDIA_TYPE = "text/csv"
ALIASES = ("application/csv", "text/comma-separated-values")


def header_present(media_type: MediaType) -> bool:
    """Whether ``text/csv; header=present`` says the first row names the columns (``absent``, the
    default, says it is data); any other value is a 400. Decoding reads the header, encoding writes
    one."""
    value = media_type.params.get("header", "absent").strip().lower()
    if value not in ("present", "absent"):
        raise BadRequest(f"The CSV header parameter must be 'present' or 'absent', not {value!r}")
    return value == "present"
