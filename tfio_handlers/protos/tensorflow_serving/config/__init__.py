"""Generated from proto/tensorflow_serving/config/ by scripts/generate_protos.py; see tfio_handlers.protos."""
