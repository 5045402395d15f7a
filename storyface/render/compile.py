"""``torch.compile`` for the UNet, with the compiled artifacts kept on disk so only the first run pays.

Default-mode compile of the whole SDXL UNet took 157 s on the first call (and as long again for a new
batch size), ``max-autotune`` more than 8 minutes without finishing (issue 13, measured on an H200).
Inductor keeps what it generates in on-disk caches keyed by graph, shapes, torch version and device:
the FX graph cache (generated code), the AOT autograd cache (forward/backward graphs) and the compiled
Triton/C++ kernels. By default they live in ``/tmp/torchinductor_$USER``, which a fresh machine or
container lacks; :func:`enable_compile_cache` points them at a folder under the StoryFace data folder,
so the next process skips inductor's work and pays only Dynamo's tracing. Torch's "mega-cache"
(``torch.compiler.save_cache_artifacts`` / ``load_cache_artifacts``) packs the same artifacts into
one file, which :meth:`CompileCache.save` writes and the next :func:`enable_compile_cache` loads: the
way to carry a warm cache to another machine.

Regional compilation (diffusers' ``compile_repeated_blocks``) compiles the transformer block once and
reuses it for every block of the same shapes: a fraction of the whole-UNet compile time for most of
its speed-up. Never autotuning: the default inductor mode only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError
from ..files import write_atomic

log = logging.getLogger(__name__)

CACHE_FOLDER = "compile-cache"  # under the data folder
INDUCTOR_SUBFOLDER = "inductor"  # TORCHINDUCTOR_CACHE_DIR; inductor puts its Triton kernels below it too
MEGA_CACHE_NAME = "mega-cache-torch-{version}.bin"  # one file per torch version: artifacts never cross versions
REPEATED_BLOCK = "BasicTransformerBlock"  # the UNet's repeated unit (diffusers' _repeated_blocks for the UNet)
CompileMode = Literal["regional", "whole"]
COMPILE_MODES = ("regional", "whole")


def default_cache_dir(data_root: str | os.PathLike | None = None) -> Path:
    """``<data folder>/compile-cache``: shared by the CLI, the web app and workers on this machine."""
    from ..paths import data_dir

    return data_dir(data_root) / CACHE_FOLDER


@dataclass
class CompileCache:
    """Where this process keeps its compiled artifacts, and what the mega-cache file brought in."""

    folder: Path
    loaded: Any = None  # torch's CacheInfo from the mega-cache file, None when there was none

    @property
    def inductor_dir(self) -> Path:
        return self.folder / INDUCTOR_SUBFOLDER

    @property
    def mega_cache_file(self) -> Path:
        import torch

        return self.folder / MEGA_CACHE_NAME.format(version=torch.__version__.replace("+", "_"))

    def save(self) -> Path | None:
        """Write what this process compiled (or took from the cache) as one mega-cache file.

        Call after the first renders, once the shapes in use have compiled. Returns None, and keeps
        any older file, when the process recorded nothing (it compiled nothing).
        """
        import torch

        saver = getattr(torch.compiler, "save_cache_artifacts", None)
        if saver is None:
            return None
        result = saver()
        if not result:
            return None
        data, info = result
        if not data:
            return None
        target = write_atomic(self.mega_cache_file, data)
        log.info("saved compile cache artifacts (%d bytes) to %s: %s", len(data), target, info)
        return target


def enable_compile_cache(folder: str | os.PathLike | None = None) -> CompileCache:
    """Point inductor's on-disk caches at ``folder`` (default: under the data folder) for this process.

    Call before the first compiled call: inductor reads ``TORCHINDUCTOR_CACHE_DIR`` when it first
    needs the folder, and some lookups are memoised, which this clears. Loads the folder's mega-cache
    file when there is one; a damaged or foreign file is skipped with a warning, never fatal (the cost
    is a cold compile). Process-wide: every later compile in this process uses this folder.
    """
    import torch
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    cache = CompileCache(Path(folder).expanduser().absolute() if folder is not None else default_cache_dir())
    cache.inductor_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache.inductor_dir)
    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    try:
        from torch._inductor.utils import clear_caches
    except ImportError:  # older torch: nothing memoised to clear
        pass
    else:
        clear_caches()
    loader = getattr(torch.compiler, "load_cache_artifacts", None)
    if loader is not None and cache.mega_cache_file.is_file():
        try:
            cache.loaded = loader(cache.mega_cache_file.read_bytes())
        except Exception as exc:  # noqa: BLE001 - any failure here only means a cold compile
            log.warning("ignoring compile cache file %s (%s: %s)", cache.mega_cache_file, type(exc).__name__, exc)
        else:
            if cache.loaded is None:  # torch logs why and returns None for a file it cannot read
                log.warning("ignoring compile cache file %s: torch could not read it", cache.mega_cache_file)
            else:
                log.info("loaded compile cache artifacts from %s: %s", cache.mega_cache_file, cache.loaded)
    log.info("compile cache: %s", cache.inductor_dir)
    return cache


def check_compile_mode(mode: str) -> None:
    if mode not in COMPILE_MODES:
        raise InputError(f"unknown compile mode {mode!r}; choose one of: {', '.join(COMPILE_MODES)}")


def compile_unet(pipe: Any, mode: CompileMode = "regional", fullgraph: bool = False, dynamic: bool | None = None) -> int:
    """Compile the pipeline's UNet in place with default-mode ``torch.compile``; returns modules compiled.

    ``regional`` compiles each repeated transformer block (diffusers' ``compile_repeated_blocks`` when
    the model declares its repeated blocks, else every ``BasicTransformerBlock``); ``whole`` compiles
    the UNet's forward. In place (``Module.compile``), so ``pipe.unet`` stays a UNet2DConditionModel and
    its weights stay its own: LoRAs fused later change what the compiled code computes, and a fused
    weight update needs no recompile. Compile after loading LoRAs that add or drop PEFT wrappers
    (``permanent=True`` or removal change the module tree, which costs one recompile).
    """
    check_compile_mode(mode)
    unet = pipe.unet
    options: dict[str, Any] = {"fullgraph": fullgraph, "dynamic": dynamic}  # mode=None: inductor's default
    if mode == "whole":
        unet.compile(**options)
        return 1
    blocks = [m for m in unet.modules() if type(m).__name__ == REPEATED_BLOCK]
    if not blocks:
        raise InputError(f"{type(unet).__name__} has no {REPEATED_BLOCK}s to compile; use mode='whole'")
    if REPEATED_BLOCK in (getattr(unet, "_repeated_blocks", None) or ()) and hasattr(unet, "compile_repeated_blocks"):
        unet.compile_repeated_blocks(**options)
    else:
        for block in blocks:
            block.compile(**options)
    return len(blocks)


def uncompile_unet(pipe: Any) -> None:
    """Back to eager: drop what :func:`compile_unet` set (compiled code stays in the on-disk cache)."""
    for module in pipe.unet.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None
