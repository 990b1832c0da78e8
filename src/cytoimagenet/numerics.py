"""Pin the CPU's floating-point kernels so a small run gives the same numbers on every machine.

Convolutions and matrix products on the CPU pick their kernels by the processor's vector
unit (AVX2, AVX-512 …) and split their sums by the thread count; each choice rounds
differently, and a dozen epochs of training turn that rounding into a different model. On
the quickstart's twelve treatments, one flipped treatment moves a score by 8.33 points:
measured on one machine, AVX-512 kernels gave 100.00 where the same run capped at AVX2 gave
91.67, and one thread instead of two changed the fusion score again.

So the quickstart caps oneDNN and MKL at AVX2 (every x86-64 processor of the last decade
has it) and fixes the thread count. This only works before the libraries start their first
kernel, so it is called first thing in a fresh process; a variable the user has set is kept.
"""

from __future__ import annotations

import os
from typing import Final

#: Environment read by oneDNN (convolutions) and MKL (matrix products) at their first use.
PINNED_ENV: Final = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
#: Threads for torch's CPU kernels: fixed, because the split of each sum depends on it.
PINNED_THREADS: Final = 2


def pin_cpu_numerics(threads: int = PINNED_THREADS) -> dict[str, str]:
    """Cap the CPU kernels' instruction set and fix torch's thread count.

    Parameters
    ----------
    threads
        Intra-op threads for torch.

    Returns
    -------
    dict[str, str]
        The settings in force, to record beside the run's results.
    """
    for name, value in PINNED_ENV.items():
        os.environ.setdefault(name, value)
    try:
        import torch
    except ImportError:  # the pipeline reports the missing extra itself
        return cpu_numerics()
    torch.set_num_threads(threads)
    return cpu_numerics()


def cpu_numerics() -> dict[str, str]:
    """Return the CPU kernel settings in force (to record beside a run's results)."""
    settings = {name: os.environ.get(name, "") for name in PINNED_ENV}
    try:
        import torch
    except ImportError:
        return settings
    settings["torch_threads"] = str(torch.get_num_threads())
    return settings
