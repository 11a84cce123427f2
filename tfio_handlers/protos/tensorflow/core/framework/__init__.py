"""Generated from proto/tensorflow/core/framework/ by scripts/generate_protos.py; see tfio_handlers.protos."""
