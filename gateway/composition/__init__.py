"""The composition root: the only place that knows every part. It builds adapters, policies, the recorder, the
router, the pipeline and the observer from settings, and hands them to the server."""
