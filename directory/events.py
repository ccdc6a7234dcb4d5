"""The directory's log event names: constants, as the gateway's (``gateway.base.events``).

The directory cannot import the gateway, so its events live here, under the
same rule: ``area.what``, the area being ``directory``, each name used by one
module only. The gateway configures structlog; this module only names events.
"""

from __future__ import annotations

__all__ = ["DIRECTORY_GENERATION_UNAVAILABLE"]

# The change counter could not be read: the cache keeps serving what it holds (TTL-bound).
DIRECTORY_GENERATION_UNAVAILABLE = "directory.generation_unavailable"
