"""The whole identity-training step as one CUDA graph, replayed once per step.

An SDXL training step at 512x512 is a few milliseconds of arithmetic spread over thousands of small
kernels (two text encoders, UNet forward and backward, loss, AdamW): run eagerly it is bound by
kernel launches, not by the GPU. Shapes never change between steps, so the step is recorded once
and replayed: random draws come from a generator registered with the graph, AdamW keeps its step
count on the device (``capturable=True``), and the graph is captured in about a second, where
``torch.compile`` spends minutes. The recorded step is the plain step, so both give the same numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

Step = Callable[[], torch.Tensor]  # one training step (forward, backward, optimizer), returns its loss


def can_graph(device: torch.device) -> bool:
    """CUDA graphs need a CUDA device; everything else takes the plain path."""
    return device.type == "cuda" and torch.cuda.is_available()


class GraphedStep:
    """A captured training step: calling it replays the graph and returns the (static) loss tensor.

    The returned tensor is overwritten by the next call; read it (``.item()``) before calling again.
    """

    def __init__(self, graph: torch.cuda.CUDAGraph, loss: torch.Tensor, capture_s: float) -> None:
        self.graph = graph
        self.loss = loss
        self.capture_s = capture_s

    def __call__(self) -> torch.Tensor:
        self.graph.replay()
        return self.loss


@torch.no_grad()
def restore(params: list[torch.Tensor], saved: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
    """Put parameters back in place (a graph holds these very tensors) and zero AdamW's moments."""
    for p, s in zip(params, saved):
        p.copy_(s)
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                value.zero_()  # exp_avg, exp_avg_sq and the step count all start at zero


def warm_up(
    step: Step, params: list[torch.Tensor], optimizer: torch.optim.Optimizer, generator: torch.Generator, steps: int = 3
) -> None:
    """Run ``steps`` steps, then undo them: parameters, optimizer moments and ``generator`` as before.

    Warm-up makes lazy state (AdamW moments, cuBLAS workspaces, cuDNN plans) outside any graph; one
    step makes all of it. On CUDA it runs on a side stream, as graph capture requires.
    """
    saved, gen_state = [p.detach().clone() for p in params], generator.get_state()
    if can_graph(generator.device):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(steps):
                step()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
    else:
        for _ in range(steps):
            step()
    restore(params, saved, optimizer)
    generator.set_state(gen_state)


def capture_step(
    step: Step,
    params: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    warmup: int = 1,
) -> GraphedStep:
    """Warm ``step`` up, undo its effects, and capture it in a CUDA graph.

    After this returns, parameters, optimizer moments and ``generator`` are as before, so the first
    replay is the first training step. ``optimizer`` must be built with ``capturable=True``.
    """
    t0 = time.perf_counter()
    gen_state = generator.get_state()
    torch.cuda.empty_cache()  # blocks cached on the main stream can't serve the side stream
    warm_up(step, params, optimizer, generator, warmup)
    torch.cuda.empty_cache()  # the warm-up's activations: the graph gets its own pool
    graph = torch.cuda.CUDAGraph()
    graph.register_generator_state(generator)
    with torch.cuda.graph(graph):
        loss = step()
    generator.set_state(gen_state)  # replays read the generator's state when they start
    torch.cuda.synchronize()
    capture_s = time.perf_counter() - t0
    log.info("captured the training step in a CUDA graph in %.2f s (warm-up %d steps)", capture_s, warmup)
    return GraphedStep(graph, loss, capture_s)
