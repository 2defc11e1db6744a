"""Using a trained recommender: the catalogue and histories it serves (catalogue), scoring with torch or
ONNX Runtime (scorers), top-K recommendations (recommend), ONNX export (onnx_export), the HTTP service
(http_app), and the command-line glue (commands)."""
