"""mendline: errors your apps log, as grouped issues, root causes and routed alerts.

The import package holds the layers as subpackages: ``schemas`` (contracts), ``ingest`` (what
comes in), ``analyzers`` (what is worked out), ``sinks`` (what goes out), and the program:
``stages``, ``cli``, ``devstack``, ``sample_app`` and ``testing`` (helpers for your own tests).
"""
