"""Generated from proto/tensorflow/ by scripts/generate_protos.py; see tfio_handlers.protos."""
