"""Evaluation protocols, one module each (registered on discovery: see :mod:`.registry`)."""

from recdistill.evaluation.protocols.registry import (DEFAULT, RANKING_METRIC, Protocol, family_of,
                                                      on_demand_choices, protocol_of_family, protocol_to_run,
                                                      register, registered, unregister)

__all__ = ["DEFAULT", "RANKING_METRIC", "Protocol", "family_of", "on_demand_choices", "protocol_of_family",
           "protocol_to_run", "register", "registered", "unregister"]
