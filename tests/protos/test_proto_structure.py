"""Our .proto sources declare exactly TensorFlow's / TF Serving's messages.

Two independent checks against the descriptors of the installed TensorFlow and TF Serving:

* a walk from every exported class through every field, nested and referenced type and enum,
  comparing the properties the wire and JSON forms depend on, with readable differences;
* per file, the ``FileDescriptorProto``s themselves (field order, options, reserved ranges,
  services), after removing the differences we made on purpose, which are listed here.
"""

from __future__ import annotations

import difflib
import importlib
from types import SimpleNamespace

import pytest
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool

import tfio_handlers.protos as protos

pytestmark = pytest.mark.tensorflow

# Every message class and enum the package exports, by export name.
EXPORTED_MESSAGES = sorted(
    name
    for name in protos.__all__
    if isinstance(getattr(protos, name), type) and hasattr(getattr(protos, name), "DESCRIPTOR")
)

# Deliberate differences from TensorFlow, all of them outside our exported messages.
# (file, message full name) pairs TensorFlow defines that we leave out.
OMITTED_MESSAGES = {
    "tensorflow/core/protobuf/meta_graph.proto": {
        "tensorflow.MetaGraphDef",
        "tensorflow.CollectionDef",
        "tensorflow.AssetFileDef",
    },
}
# RPC methods TF Serving defines that our (documentation-only) service definitions leave out: none
# since HandleReloadConfigRequest and the model server config it carries were added.
OMITTED_METHODS: set[str] = set()
# Fields of our messages that TensorFlow has and we skip: none.
OMITTED_FIELDS: set[str] = set()
# tensorflow.error.Code: TensorFlow defines it in xla/tsl/protobuf/error_codes.proto and re-exports
# it from tensorflow/core/protobuf/error_codes.proto (package tensorflow.error.dummy) by a public
# import; we define it directly at the latter path. The enum itself is compared below.
RELOCATED = {"tensorflow/core/protobuf/error_codes.proto": "xla/tsl/protobuf/error_codes.proto"}


def _field_facts(field: descriptor.FieldDescriptor) -> dict[str, object]:
    """What a field contributes to the wire and JSON forms."""
    oneof = field.containing_oneof
    return {
        "name": field.name,
        "number": field.number,
        "type": field.type,
        "repeated": field.is_repeated,
        "required": field.is_required,
        "packed": field.is_packed,
        "presence": field.has_presence,
        "json_name": field.json_name,
        "message_type": field.message_type.full_name if field.message_type else None,
        "enum_type": field.enum_type.full_name if field.enum_type else None,
        "oneof": oneof.name if oneof is not None else None,
        "default": field.default_value
        if not field.is_repeated and not field.message_type
        else None,
    }


def _compare_enum(
    ours: descriptor.EnumDescriptor, theirs: descriptor.EnumDescriptor, problems: list[str]
) -> None:
    if ours.full_name != theirs.full_name:
        problems.append(f"enum name {ours.full_name} != {theirs.full_name}")
    mine = [(v.name, v.number) for v in ours.values]
    their = [(v.name, v.number) for v in theirs.values]
    if mine != their:
        problems.append(f"{ours.full_name}: values {mine} != {their}")


def _compare_message(
    ours: descriptor.Descriptor,
    theirs: descriptor.Descriptor,
    problems: list[str],
    seen: set[str],
) -> None:
    """Recursively compare two message descriptors, appending readable differences."""
    if ours.full_name in seen:
        return
    seen.add(ours.full_name)
    if ours.full_name != theirs.full_name:
        problems.append(f"message name {ours.full_name} != {theirs.full_name}")
        return
    name = ours.full_name
    mine = {f.number: f for f in ours.fields}
    their = {f.number: f for f in theirs.fields if f"{name}.{f.name}" not in OMITTED_FIELDS}
    for number in sorted(set(mine) | set(their)):
        if number not in mine:
            problems.append(f"{name}: missing field {their[number].name} = {number}")
            continue
        if number not in their:
            problems.append(f"{name}: extra field {mine[number].name} = {number}")
            continue
        a, b = _field_facts(mine[number]), _field_facts(their[number])
        for key in a:
            if a[key] != b[key]:
                problems.append(f"{name}.{a['name']}: {key} {a[key]!r} != {b[key]!r}")
        if mine[number].message_type is not None and their[number].message_type is not None:
            _compare_message(mine[number].message_type, their[number].message_type, problems, seen)
        if mine[number].enum_type is not None and their[number].enum_type is not None:
            _compare_enum(mine[number].enum_type, their[number].enum_type, problems)
    oneofs_mine = {o.name: [f.name for f in o.fields] for o in ours.oneofs}
    oneofs_their = {o.name: [f.name for f in o.fields] for o in theirs.oneofs}
    if oneofs_mine != oneofs_their:
        problems.append(f"{name}: oneofs {oneofs_mine} != {oneofs_their}")
    if set(ours.nested_types_by_name) != set(theirs.nested_types_by_name):
        problems.append(
            f"{name}: nested types {sorted(ours.nested_types_by_name)} "
            f"!= {sorted(theirs.nested_types_by_name)}"
        )
    for nested_name, nested in ours.nested_types_by_name.items():
        if nested_name in theirs.nested_types_by_name:
            _compare_message(nested, theirs.nested_types_by_name[nested_name], problems, seen)
    if set(ours.enum_types_by_name) != set(theirs.enum_types_by_name):
        problems.append(f"{name}: nested enums differ")
    for enum_name, enum in ours.enum_types_by_name.items():
        if enum_name in theirs.enum_types_by_name:
            _compare_enum(enum, theirs.enum_types_by_name[enum_name], problems)
    if ours.GetOptions().map_entry != theirs.GetOptions().map_entry:
        problems.append(f"{name}: map_entry differs")


@pytest.mark.parametrize("export", EXPORTED_MESSAGES)
def test_exported_message_matches_tensorflow(tf: SimpleNamespace, export: str) -> None:
    """Walk everything reachable from the class and compare it with TensorFlow's."""
    del tf  # imported for its side effect: TensorFlow's descriptors are in the default pool
    ours = getattr(protos, export).DESCRIPTOR
    theirs = descriptor_pool.Default().FindMessageTypeByName(ours.full_name)
    problems: list[str] = []
    _compare_message(ours, theirs, problems, set())
    assert problems == []


def test_enums_match_tensorflow(tf: SimpleNamespace) -> None:
    default = descriptor_pool.Default()
    problems: list[str] = []
    for enum in (protos.DataType.DESCRIPTOR, protos.ErrorCode.DESCRIPTOR):
        _compare_enum(enum, default.FindEnumTypeByName(enum.full_name), problems)
    assert problems == []
    assert protos.DataType.Value("DT_FLOAT_REF") == tf.DT_FLOAT_REF == 101
    assert protos.DT_FLOAT == tf.DT_FLOAT


def _file_proto(file: descriptor.FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    return proto


def _our_files() -> list[descriptor.FileDescriptor]:
    # The service-only modules are not imported by the package; load them into POOL here.
    importlib.import_module("tfio_handlers.protos.tensorflow_serving.apis.prediction_service_pb2")
    importlib.import_module("tfio_handlers.protos.tensorflow_serving.apis.model_service_pb2")
    names = {getattr(protos, n).DESCRIPTOR.file.name for n in EXPORTED_MESSAGES}
    names |= {
        "tensorflow_serving/apis/prediction_service.proto",
        "tensorflow_serving/apis/model_service.proto",
        "tensorflow/core/protobuf/error_codes.proto",
    }
    return [protos.POOL.FindFileByName(n) for n in sorted(names)]


@pytest.mark.parametrize("file", _our_files(), ids=lambda f: f.name)
def test_file_descriptor_protos_match(tf: SimpleNamespace, file: descriptor.FileDescriptor) -> None:
    """Whole-file comparison: order, options, reserved ranges, services; minus known omissions."""
    del tf
    mine = _file_proto(file)
    their = _file_proto(
        descriptor_pool.Default().FindFileByName(RELOCATED.get(file.name, file.name))
    )
    omitted = OMITTED_MESSAGES.get(file.name, set())
    kept = [m for m in their.message_type if f"{their.package}.{m.name}" not in omitted]
    del their.message_type[:]
    their.message_type.extend(kept)
    for service in their.service:
        methods = [
            m
            for m in service.method
            if f"{their.package}.{service.name}.{m.name}" not in OMITTED_METHODS
        ]
        del service.method[:]
        service.method.extend(methods)
    for proto in (mine, their):
        # Not part of the wire/JSON contract: file name (relocation), imports (which follow from
        # the types used), and language-specific file options (java_package, go_package...).
        proto.ClearField("name")
        proto.ClearField("dependency")
        proto.ClearField("public_dependency")
        proto.ClearField("options")
        proto.ClearField("source_code_info")
    if mine != their:
        diff = difflib.unified_diff(
            str(their).splitlines(), str(mine).splitlines(), "tensorflow", "ours", lineterm=""
        )
        pytest.fail("\n".join(diff))


def test_omissions_are_really_absent() -> None:
    """The omission lists above describe our sources (so they cannot silently go stale)."""
    for names in OMITTED_MESSAGES.values():
        for name in names:
            with pytest.raises(KeyError):
                protos.POOL.FindMessageTypeByName(name)
    service = protos.POOL.FindServiceByName("tensorflow.serving.ModelService")
    assert [m.name for m in service.methods] == ["GetModelStatus", "HandleReloadConfigRequest"]
    assert [
        m.name
        for m in protos.POOL.FindServiceByName("tensorflow.serving.PredictionService").methods
    ] == ["Classify", "Regress", "Predict", "MultiInference", "GetModelMetadata"]
