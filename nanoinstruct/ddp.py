"""torchrun data parallelism (PyTorch's own engine: torch.distributed, env:// rendezvous): joining
the process group, the collectives the stage scripts need, and each process's share of a batch.
Without torchrun (WORLD_SIZE unset) every function here is the identity or a no-op, so the single-
process code path is the plain one."""
import atexit
import os
import sys

import torch


def world_size():
    """Processes of this run: WORLD_SIZE under torchrun, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device):
    """Under torchrun (WORLD_SIZE > 1): join the process group, NCCL on GPUs (one per process),
    gloo on CPU; ranks other than 0 print nothing. Returns (rank, world_size); (0, 1) in a plain
    process, where nothing here runs and the code path is the single-process one."""
    if world_size() == 1:
        return 0, 1
    import torch.distributed as dist
    if str(device).startswith("cuda"):
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    atexit.register(_leave)
    hook = sys.excepthook
    sys.excepthook = lambda *exc: (failed(), hook(*exc))
    if dist.get_rank() != 0:
        sys.stdout = open(os.devnull, "w")
    return dist.get_rank(), dist.get_world_size()


_FAILED = []


def failed():
    """This process stops on an error (common.die, the divergence guard, an exception): it leaves
    the group without waiting for the others, which are elsewhere than at the exit."""
    _FAILED.append(True)


def _leave():
    """At exit: wait for the others, then leave the group (a process that left while another was
    still reading its last message could abort in gloo)."""
    if not _FAILED and torch.distributed.is_initialized():
        torch.distributed.barrier()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def is_main():
    """Rank 0 (or a plain process): the one process that writes files."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def all_sum(*values, device="cpu"):
    """Each value summed over all processes (as floats); the values themselves without torchrun."""
    if world_size() == 1 or not torch.distributed.is_initialized():
        return values if len(values) > 1 else values[0]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    out = tuple(t.tolist())
    return out if len(out) > 1 else out[0]


def sum_grads(model):
    """Data parallelism: each parameter's gradient summed over all processes, in one flat
    all-reduce (each process backpropagates its share of the global batch, its loss already
    divided by the global count, so the sum is the single-process gradient). A parameter a
    process left without a gradient (no data this step) counts as zero."""
    if world_size() == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    for p, g in zip(params, flat.split([g.numel() for g in grads])):
        p.grad = g.view_as(p).clone()


def shard(items, rank, world):
    """This process's share of a batch: every world-th item from rank (all of them on one)."""
    return items[rank::world]


def gather(obj):
    """Every process's obj, in rank order (torch.distributed.all_gather_object); [obj] on one."""
    if world_size() == 1 or not torch.distributed.is_initialized():
        return [obj]
    parts = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, obj)
    return parts


def all_true(flag, device="cpu"):
    """flag held on every process (a logical and over processes); flag itself on one. generate
    takes it as all_done, so that every process samples as many steps as one process would."""
    if world_size() == 1 or not torch.distributed.is_initialized():
        return bool(flag)
    return all_sum(0.0 if flag else 1.0, device=device) == 0
