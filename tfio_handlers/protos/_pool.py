"""The private descriptor pool that holds tfio-handlers' copies of the TensorFlow messages.

TensorFlow and TF Serving register ``tensorflow.TensorProto`` and friends, under the same file
names, in protobuf's *default* pool. If our generated modules used that pool too, whichever
package was imported second would fail (or, with the pure-Python backend, silently replace the
other's descriptors). So every generated ``*_pb2`` module under this package adds its file to
:data:`POOL` instead, and builds its classes with :func:`build_module`, which, unlike
``google.protobuf.internal.builder``, does not register them in the default symbol database.

The classes therefore have TensorFlow's full names, wire format and JSON form, but are distinct
Python classes from TensorFlow's; :func:`tfio_handlers.protos.coerce` converts between the two.

Only the generated modules call :func:`add_file` and :func:`build_module`.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from types import ModuleType
from typing import Any, cast

from google.protobuf import descriptor, descriptor_pool, message, message_factory, reflection
from google.protobuf.internal import enum_type_wrapper

__all__ = ["POOL", "WELL_KNOWN", "add_file", "build_module"]

POOL = descriptor_pool.DescriptorPool()
"""Our own pool; holds our TensorFlow/TF Serving files and the well-known types they import."""

WELL_KNOWN: dict[str, type[message.Message]] = {}
"""Classes of the well-known types copied into :data:`POOL`, by full name (``google.protobuf.Any``).

They are distinct from ``google.protobuf.any_pb2.Any`` & co. (which live in the default pool), and
a field of our messages only accepts its own class; they are re-exported by
:mod:`tfio_handlers.protos` under their plain names, which is also where they pickle from.
"""

_PUBLIC_MODULE = "tfio_handlers.protos"


def add_file(serialized: bytes, well_known: Iterable[ModuleType] = ()) -> descriptor.FileDescriptor:
    """Add one serialized ``FileDescriptorProto`` to :data:`POOL` and return its descriptor.

    ``well_known`` are the ``google.protobuf.*_pb2`` modules the file imports (``any_pb2``,
    ``wrappers_pb2``): a pool must hold every dependency of a file, so their files are copied into
    :data:`POOL` first (once). Our own dependencies are already there, because each generated module
    imports the modules of its dependencies before calling this.
    """
    for module in well_known:
        dependency: descriptor.FileDescriptor = module.DESCRIPTOR
        try:
            POOL.FindFileByName(dependency.name)
        except KeyError:
            copied = POOL.AddSerializedFile(dependency.serialized_pb)
            for msg_desc in copied.message_types_by_name.values():
                WELL_KNOWN[msg_desc.full_name] = _build_message(_PUBLIC_MODULE, msg_desc, "")
    return POOL.AddSerializedFile(serialized)


def _new_nested(full_name: str, serialized: bytes) -> message.Message:
    """Unpickle helper: our nested message class ``full_name`` parsed from ``serialized``."""
    cls = message_factory.GetMessageClass(POOL.FindMessageTypeByName(full_name))
    return cls.FromString(serialized)


def _reduce_nested(self: message.Message) -> tuple[Any, ...]:
    """``__reduce__`` of nested classes, which look themselves up in :data:`POOL`.

    protobuf's own ``__reduce__`` re-creates a nested message through the *default* symbol
    database, which does not know our classes (or, with TensorFlow loaded, would give TensorFlow's).
    """
    return (_new_nested, (self.DESCRIPTOR.full_name, self.SerializePartialToString()))


def _build_message(
    module_name: str, desc: descriptor.Descriptor, prefix: str
) -> type[message.Message]:
    """Create the class of ``desc`` and, as class attributes, of its nested messages."""
    namespace: dict[str, Any] = {
        name: _build_message(module_name, nested, f"{prefix}{desc.name}.")
        for name, nested in desc.nested_types_by_name.items()
    }
    namespace["DESCRIPTOR"] = desc
    namespace["__module__"] = module_name
    namespace["__qualname__"] = prefix + desc.name
    if desc.containing_type is not None:
        namespace["__reduce__"] = _reduce_nested
    cls = reflection.GeneratedProtocolMessageType(desc.name, (message.Message,), namespace)
    return cast("type[message.Message]", cls)


def _add_descriptor_globals(
    namespace: MutableMapping[str, Any], desc: descriptor.Descriptor, prefix: str
) -> None:
    """Bind ``_OUTER_INNER`` names to nested message and enum descriptors, as protoc's code does."""
    for name, nested in desc.nested_types_by_name.items():
        nested_prefix = prefix + name.upper()
        namespace[nested_prefix] = nested
        _add_descriptor_globals(namespace, nested, nested_prefix + "_")
    for enum in desc.enum_types:
        namespace[prefix + enum.name.upper()] = enum


def build_module(
    file_desc: descriptor.FileDescriptor, module_name: str, namespace: MutableMapping[str, Any]
) -> None:
    """Fill a generated module's globals with the classes and descriptors of ``file_desc``.

    Produces the same names protoc's builder does (``Message`` classes with nested classes as
    attributes, ``Enum`` wrappers, enum value constants, ``_MESSAGE``/``_ENUM``/``_SERVICE``
    descriptors), so the modules look like any other ``*_pb2`` module; ``__module__`` and
    ``__qualname__`` are set so that messages pickle by reference to their class.
    """
    for name, msg_desc in file_desc.message_types_by_name.items():
        prefix = "_" + name.upper()
        namespace[prefix] = msg_desc
        _add_descriptor_globals(namespace, msg_desc, prefix + "_")
    for name, enum_desc in file_desc.enum_types_by_name.items():
        namespace["_" + name.upper()] = enum_desc
        namespace[name] = enum_type_wrapper.EnumTypeWrapper(enum_desc)
        for value in enum_desc.values:
            namespace[value.name] = value.number
    for name, service in file_desc.services_by_name.items():
        namespace["_" + name.upper()] = service
    for name, msg_desc in file_desc.message_types_by_name.items():
        namespace[name] = _build_message(module_name, msg_desc, "")
