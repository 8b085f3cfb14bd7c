"""Events as the app side ships them, and code loaded from a path, for the analyzer tests."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path
from typing import Any

from mendline.ingest import Capture, EventBuilder, InApp


def event_of(
    exc: BaseException | None,
    *,
    service: str = "checkout",
    environment: str = "production",
    release: str | None = "1.0.0",
    host: str = "web-1",
    logger: str | None = "checkout.orders",
    message: str = "request failed",
    custom: list[str] | None = None,
    in_app: InApp | None = None,
) -> dict[str, Any]:
    """The wire dict the app side would ship for ``exc`` logged with ``message``."""
    builder = EventBuilder(service, environment, release, host=host, in_app=in_app)
    return builder.build(Capture.now("error", logger, message, {}, exc, fingerprint=custom))


def load(path: Path, name: str, source: str) -> types.ModuleType:
    """Write ``source`` to ``path`` and import it as module ``name`` (not kept in sys.modules)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
