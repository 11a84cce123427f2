"""Generated from proto/tensorflow_serving/apis/ by scripts/generate_protos.py; see tfio_handlers.protos."""
