"""Where a run trains: ``torchrun``'s processes, the device, AMP and the memory format.

Under ``torchrun --nproc_per_node N -m cytoimagenet pretrain ...`` every process sees
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; it joins a process group (NCCL on CUDA, gloo
on CPU) and trains on ``cuda:LOCAL_RANK``. Without them the run is a single process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cytoimagenet.errors import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Context:
    """Where this process runs.

    Attributes
    ----------
    rank, world_size, local_rank : int
        Position among the processes (0, 1, 0 for a single process).
    device : torch.device
        The device this process trains on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group is in use."""
        return self.world_size > 1


def env_ranks(env: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """Return ``(rank, world_size, local_rank)`` from ``torchrun``'s variables (or 0, 1, 0)."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"inconsistent RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return rank, world, local


def resolve_device(option: str, local_rank: int, world_size: int) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into this process's device.

    Raises
    ------
    ConfigError
        When CUDA is asked for but absent, or ``cuda:N`` is given to several processes.
    """
    import torch

    if option == "cpu" or (option == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {option}: CUDA is not available here; use --device cpu")
    if option.startswith("cuda:"):
        if world_size > 1:
            raise ConfigError("under torchrun give --device cuda (each process takes LOCAL_RANK)")
        index = int(option.split(":", 1)[1])
    else:
        index = local_rank if world_size > 1 else 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"cuda:{index} does not exist ({torch.cuda.device_count()} GPU(s))")
    return torch.device("cuda", index)


def setup(device: str) -> Context:
    """Read the environment, pick the device and, for several processes, join the group."""
    import torch
    import torch.distributed as dist

    rank, world, local = env_ranks()
    dev = resolve_device(device, local, world)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **kwargs)
    return Context(rank=rank, world_size=world, local_rank=local, device=dev)


def teardown(context: Context) -> None:
    """Leave the process group, if this run joined one."""
    import torch.distributed as dist

    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: Context) -> None:
    """Wait for every process (no-op for one)."""
    import torch.distributed as dist

    if context.distributed and dist.is_initialized():
        if context.device.type == "cuda":
            dist.barrier(device_ids=[context.device.index])
        else:
            dist.barrier()


def resolve_amp(option: str, device: torch.device) -> str:
    """Return ``off``, ``bf16`` or ``fp16`` for ``option`` on ``device``.

    Raises
    ------
    ConfigError
        For ``bf16``/``fp16`` without CUDA.
    """
    import torch

    if device.type != "cuda":
        if option not in ("auto", "off"):
            raise ConfigError(f"--amp {option} needs a CUDA device; use --amp off on CPU")
        return "off"
    if option == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return option


def resolve_channels_last(option: str, device: torch.device) -> bool:
    """Return whether to use the channels-last memory format.

    ``auto`` turns it on for CUDA and CPU alike: EfficientNet-B0 trains 1.6x faster with it on
    this project's 2-core CPU (18 vs 11.5 img/s) and it is the fast layout for AMP on GPUs.
    """
    return option == "on" or (option == "auto" and device.type in ("cuda", "cpu"))
