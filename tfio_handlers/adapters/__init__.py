"""Thin adapters from web servers to the pipeline: an ASGI app (:mod:`.asgi`) and a WSGI app (:mod:`.wsgi`).

Neither knows a URL of its own: both ask the registry's route table (:mod:`.routes`) which route takes a
request, and run its handler as the route's work kind says (in the pipeline's bounded work pool, beside
it, or at once for health checks). The table holds every plugin's routes
(:func:`~tfio_handlers.hookspecs.register_routes`: the Open Inference Protocol's ``/v2/...`` in
``tfio-handlers-openinference``, say) and the built-in ones, declared through the same hook
(:mod:`.builtin_routes`): SageMaker's (``GET /ping``, ``POST /invocations``) and TF Serving's REST routes
(``/v1/models/...``, handled by :mod:`.tfs_rest`). ``tfio-handlers plugins`` lists the table.
:mod:`.serving` holds what the adapters share (readiness, body limits, the access log).
"""
