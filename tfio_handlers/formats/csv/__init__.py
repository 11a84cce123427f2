"""The CSV codec (``text/csv``): RFC 4180 rows in, one row per instance out.

Decoding (``docs/formats/csv.md`` has the full rules):

* every row is an instance, so a one-row body keeps its batch dimension ([1, C], not [C]);
* quoted fields may hold commas, quotes (doubled) and line breaks; lines end in LF or CRLF; blank lines
  are skipped; a row with a different number of fields is a 400 naming its line;
* ``text/csv; header=present`` says the first row names the columns: the inputs of a multi-input
  predict signature, or the features of a classify/regress signature (a name may repeat: its columns
  go together into one input or feature);
* cells are typed by the signature input's dtype (text stays text for ``DT_STRING`` inputs); with no
  signature, numbers become float32 and a table with any non-number becomes strings;
* a single predict input is shaped by its signature shape: rank 1 (or one column and an unknown
  rank) gives ``[N]``, rank 2 ``[N, C]``, a higher rank with known dimensions ``[N, *dims]``;
* a classify/regress body without a header gives one example per row with the float feature
  ``inputs`` holding the row, as SageMaker's legacy container did (for its first row only); with a
  header, each column is a feature typed as TF Serving types JSON example values (integer literals
  int64, other numbers float, anything else bytes), and an empty cell leaves the feature out.

The numeric fast path reads a quote-free body as one JSON document (rows become arrays), with
pysimdjson when installed, else orjson, else the standard library, and checks every row's length;
anything it cannot take (quotes, text, blank lines, ragged rows, bad cells) goes to the exact path on
the ``csv`` module, which also produces every error message.

Encoding writes one row per batch element; see :func:`encode_csv`.

The package: :mod:`.dialect` (the media type and its ``header`` parameter), :mod:`.cells` (one
cell's text → its value), :mod:`.table` (a body → a table: the fast and the exact path),
:mod:`.decode` (a table → tensors or examples, :func:`decode_csv`) and :mod:`.encode`
(:func:`encode_csv`).
"""

from __future__ import annotations

from ...hookspecs import Register, hookimpl
from .decode import decode_csv
from .dialect import ALIASES, MEDIA_TYPE
from .encode import encode_csv

__all__ = ["MEDIA_TYPE", "decode_csv", "encode_csv", "register_codecs"]


@hookimpl
def register_codecs(register: Register) -> None:
    """Declare ``text/csv`` (aliases ``application/csv``, ``text/comma-separated-values``)."""
    register(MEDIA_TYPE, decode=decode_csv, encode=encode_csv, aliases=list(ALIASES))
