"""This project on uvicorn, for the HTTP benchmarks: ``ASGIApp(Pipeline(EmbeddedBackend(models)))``,
optionally with dynamic batching in front of the backend::

    python benchmarks/serve_ours.py --port 8080 --models iris=/tmp/m/iris,dense784=/tmp/m/dense784 \\
        [--batching 8:1000]

It is what ``tfio-handlers serve`` runs, built here so that the benchmark chooses the models and the
batching settings without depending on environment wiring. Access logging is off in both servers.
"""

from __future__ import annotations

import argparse
import logging
import os


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--models", required=True, help="name=path,name=path")
    parser.add_argument(
        "--batching", default=None, help="MAX_BATCH_SIZE:TIMEOUT_MICROS (off when absent)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(level=logging.WARNING)

    import uvicorn

    from tfio_handlers.adapters.asgi import ASGIApp
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.pipeline import Pipeline

    models = dict(item.partition("=")[::2] for item in args.models.split(","))
    backend = EmbeddedBackend(models)
    if args.batching:
        from tfio_handlers.backends.batching import BatchingBackend

        size, _, timeout = args.batching.partition(":")
        backend = BatchingBackend(  # type: ignore[assignment]
            backend, max_batch_size=int(size), batch_timeout_micros=int(timeout or 1000)
        )
    app = ASGIApp(Pipeline(backend))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
