"""The pickle codec (``application/python-pickle``, alias ``application/x-pickle``): opt-in only.

Unpickling runs whatever callables a pickle names, so a pickle body is remote code execution unless
restricted (CWE-502; SageMaker's inference toolkit shipped ``np.load(allow_pickle=True)``). Hence:

* by default the codec answers 415 and says how to enable it;
* ``TFIO_HANDLERS_ENABLE_PICKLE=1`` (``Settings.enable_pickle``) reads pickles with
  :class:`RestrictedUnpickler`: a pure-Python unpickler whose ``find_class`` knows only what rebuilding
  numpy arrays, dtypes and scalars takes, and plain builtins (``list``, ``dict``, ``tuple``, ``set``,
  ``frozenset``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``bool``, ``bytearray``). Every
  other global (``os.system``, ``builtins.eval``, ``getattr``, ``subprocess.Popen``, ...) is a 400 and
  nothing runs. numpy's own callables are not handed out either: the unpickler gives small
  replacements that validate their arguments and build arrays from the bytes with ``np.frombuffer``
  (numpy's ``ndarray.__setstate__`` crashes the process on some malformed states). The ``BUILD``
  opcode is allowed only on those replacements; ``NEWOBJ``, extension codes, persistent ids and
  out-of-band buffers are refused. After loading, the value is walked once: it may not expand beyond
  the size of the body through shared references, nest deeper than ``max_depth`` or hold more than
  ``max_elements`` values;
* ``TFIO_HANDLERS_UNSAFE_PICKLE=1`` (``Settings.unsafe_pickle``, which implies enabling) uses plain
  ``pickle.loads``: for trusted clients only.

The value a pickle holds is read like a JSON body: an array (or nested lists) is the batch of the
single input; a dict names the inputs (predict) or is one example's features (classify/regress); a list
of dicts is one instance (or example) per dict. Arrays are cast to the signature's dtypes without
changing a value.

The encoder (also only when enabled) pickles the response as plain data, a ``dict`` of numpy arrays
(``{output: array}``; classify ``{"classes", "scores"}``; regress ``{"outputs"}``), never the protobuf
message, so the client needs numpy but not this library or protobuf to read it.

The package: :mod:`.restricted` (the restricted unpickler, :func:`restricted_loads`) and
:mod:`.codec` (:func:`decode_pickle`, :func:`encode_pickle`); this module registers them.
"""

from __future__ import annotations

from ...config import Settings
from ...hookspecs import Register, hookimpl
from .codec import ALIASES, MEDIA_TYPE, PROTOCOL, decode_pickle, encode_pickle
from .restricted import RestrictedUnpickler, restricted_loads

__all__ = [
    "ALIASES",
    "MEDIA_TYPE",
    "PROTOCOL",
    "RestrictedUnpickler",
    "decode_pickle",
    "encode_pickle",
    "register_codecs",
    "restricted_loads",
]


def switched_off(settings: Settings) -> tuple[str, ...]:
    """The pickle media types when the settings leave pickle off (the default), else none."""
    return () if settings.enable_pickle or settings.unsafe_pickle else (MEDIA_TYPE, *ALIASES)


@hookimpl
def register_codecs(register: Register) -> None:
    """Declare ``application/python-pickle`` (alias ``application/x-pickle``), a binary type."""
    register(
        MEDIA_TYPE, decode=decode_pickle, encode=encode_pickle, aliases=list(ALIASES), text=False
    )
