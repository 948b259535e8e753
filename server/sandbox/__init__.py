"""The sandbox: local, faithful simulators of the Hub's services, with simulated time.

`provider` speaks the instance provider's (cortecs-compatible) protocol. Every delay is in
simulated seconds on one `SimClock`, whose speed factor makes tests run in milliseconds and
demos in seconds; `Faults` make chosen routes fail on demand.
"""

from .clock import SimClock
from .faults import FaultMiddleware, FaultRule, Faults

__all__ = ["FaultMiddleware", "FaultRule", "Faults", "SimClock"]
