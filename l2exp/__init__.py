"""l2exp: a configuration-driven experiment platform for Level-2 order-book strategies."""

from l2exp.config import register_resolvers

register_resolvers()

__all__ = ["register_resolvers"]
__version__ = "0.1.0"
