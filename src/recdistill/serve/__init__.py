"""Using a trained recommender: the catalogue and histories it serves (catalogue), scoring with torch or
ONNX Runtime (scorers), top-K recommendations (recommend), ONNX export (onnx_export), the HTTP service
(http_app), its metrics and access log (observe), API keys (auth), slow and idle connections (timeouts), the
app as uvicorn's workers build it (app_factory), and opening what a user points at (source). The
command-line glue is :mod:`recdistill.recipes.serve`."""
