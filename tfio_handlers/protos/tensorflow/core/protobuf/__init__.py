"""Generated from proto/tensorflow/core/protobuf/ by scripts/generate_protos.py; see tfio_handlers.protos."""
