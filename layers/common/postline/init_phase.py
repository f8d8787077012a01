"""A function's Init phase (its module-level code, run once per container) without garbage collection.

What a handler module builds at cold start (the modules, botocore's service models, the clients, the template
environment) lives as long as its container, so the collector's passes over it while it is built free almost
nothing, yet they cost a sixth to a quarter of the cold start (``make bench``, the cold-start rows). In the block,
the collector is off; at its end, what the block built is frozen (moved where later collections do not walk it, so
warm invocations' collections are shorter too) and the collector is on again. The few cycles the imports leave as
garbage stay allocated: a fraction of a megabyte, once per container.

    with init_phase():
        from postline.render import RenderContext
        render_context = RenderContext(settings)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def init_phase() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
