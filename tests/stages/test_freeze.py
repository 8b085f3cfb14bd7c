"""A started stage command has moved its startup objects out of the collector's reach, so a
full collection, later, walks only what the stages made since."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A stage command in miniature, in a process of its own (a freeze lasts as long as it): the
# stage says how many objects were frozen when it ran, and how many the collector still walks.
_COMMAND = textwrap.dedent(
    """
    import asyncio, gc
    from mendline.schemas.settings import Settings
    from mendline.stages import _supervisor

    async def stage(settings, stop, context):
        print(gc.get_freeze_count(), len(gc.get_objects()), flush=True)

    _supervisor.STAGES = {"probe": _supervisor.Stage(stage)}
    asyncio.run(_supervisor.run_stage("probe", Settings()))
    """
)


def test_a_stage_command_freezes_what_startup_made() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _COMMAND], capture_output=True, text=True, timeout=60, check=True
    )
    frozen, tracked = map(int, done.stdout.split())
    # Everything imported (settings, stages, their models) is frozen; what the collector
    # still tracks is what the stage command made after, a small part of it.
    assert frozen > 20_000
    assert tracked < frozen / 4
