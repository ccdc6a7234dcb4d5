"""The policy engine's log event names: constants, as the gateway's (``gateway.base.events``).

The policies cannot import the gateway, so their events live here, under the
same rule: ``area.what``, the area being ``policy``, each name used by one
module only. The gateway configures structlog; this module only names events.
"""

from __future__ import annotations

__all__ = ["POLICY_RELOADED", "POLICY_RELOAD_FAILED"]

POLICY_RELOADED = "policy.reloaded"  # rules: how many the new file holds
POLICY_RELOAD_FAILED = "policy.reload_failed"  # the rule file is invalid: the old rules stay
