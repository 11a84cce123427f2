"""Generated from proto/tensorflow/core/ by scripts/generate_protos.py; see tfio_handlers.protos."""
