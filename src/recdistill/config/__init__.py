"""Config groups in YAML, shipped inside the package, composed with OmegaConf.

See :func:`recdistill.config.compose.compose`.
"""

from recdistill.config.compose import compose, config_hash, has_key, list_options, to_plain, to_yaml
from recdistill.config.validate import check_choice, check_positive, check_range

__all__ = [
    "compose",
    "config_hash",
    "list_options",
    "to_yaml",
    "to_plain",
    "has_key",
    "check_choice",
    "check_positive",
    "check_range",
]
