"""Generated from proto/tensorflow/core/example/ by scripts/generate_protos.py; see tfio_handlers.protos."""
