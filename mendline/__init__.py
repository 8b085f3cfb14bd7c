"""mendline: errors your apps log, as grouped issues, root causes and routed alerts.

The import package holds the layers as subpackages: ``schemas`` (contracts), ``ingest`` (what
comes in), ``analyzers`` (what is worked out), ``sinks`` (what goes out), and the program:
``stages``, ``cli``, ``devstack``, ``sample_app`` and ``testing`` (helpers for your own tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mendline.ingest.app import heartbeat

__all__ = ["heartbeat"]


def __getattr__(name: str) -> Any:
    # Loaded at first use: the command line's help, and apps that only log, need no Kafka
    # client for it.
    if name == "heartbeat":
        from mendline.ingest.app import heartbeat

        return heartbeat
    raise AttributeError(f"module 'mendline' has no attribute {name!r}")
