"""The bundled AWS emulator (``dynadex local-aws``): moto, made to behave like AWS for exports and streams.

``running(**knobs)`` starts it in a child process on a free port and yields
its endpoint; ``serve`` runs it in the foreground.
"""

from dynadex.local_aws.config import Knobs
from dynadex.local_aws.fixture import LocalAWS, running

__all__ = ["Knobs", "LocalAWS", "running"]
