"""Thin adapters from web servers to the pipeline: an ASGI app (:mod:`.asgi`) and a WSGI app (:mod:`.wsgi`).

Both serve SageMaker's routes (``GET /ping``, ``POST /invocations``) and TF Serving's REST routes
(``/v1/models/...``); :mod:`.serving` holds what they share (readiness, body limits, the access log).
"""
