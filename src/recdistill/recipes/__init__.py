"""Recipes: one module per workload (prepare, student, teacher, export, distill, lm, bench) and the run
lifecycle they share (:mod:`.lifecycle`). A recipe reads the composed config, builds the components with
plain arguments and runs the workload; it returns a small result object. The command line
(``recdistill.cli``) and the pipeline (``recdistill.pipeline``) both call these functions.

Only this package and ``recdistill.config`` read the OmegaConf config; see docs/architecture.md.
"""
