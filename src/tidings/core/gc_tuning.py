"""The garbage collector of a long-running Tidings process: fewer full collections.

CPython's thresholds (700, 10, 10) suit short scripts. Under load a Tidings process
builds rows by the hundred for each batch; objects still alive when a few young
collections pass (a batch in flight) are promoted to the oldest generation, and
every full collection walks every object of the process, the loaded modules
included. In a 20,000-message run of the SMPP benchmark, ``tidings serve`` ran 21
full collections of up to 147 ms each: 2.3 s of its 11.7 s of CPU.

``tune_for_server`` freezes what start-up loaded (modules, the ORM's metadata,
phonenumbers' numbering plans), so that collections no longer walk it, and raises
the first threshold, so that a batch's objects mostly die before they are
collected at all. Cycles are still collected; only less often.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython: 700)


def tune_for_server() -> None:
    """Call once, when the process has imported what it runs and before it serves."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
