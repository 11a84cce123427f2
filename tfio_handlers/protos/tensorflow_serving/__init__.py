"""Generated from proto/tensorflow_serving/ by scripts/generate_protos.py; see tfio_handlers.protos."""
