"""Voxel chunking and a memory check shared by the model fits (private).

The fits read the 4-D series one block of voxels at a time, so the working memory is bounded
by ``chunk_size`` whatever the image size. Blocks are taken as slabs along the last spatial
axis (a view for C- and Fortran-ordered arrays alike, so nothing but the slab is copied when a
Fortran-ordered NIfTI array is flattened), split further when a slab holds more than
``chunk_size`` voxels.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import InputDataError, InsufficientMemoryError

__all__: list[str] = []


def available_memory() -> int | None:
    """Bytes of memory available to this process (``MemAvailable``, capped by a cgroup limit)."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        return None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                raw = fh.read().strip()
            if raw != "max" and int(raw) < (avail or 1 << 62):
                usage_path = path.replace("memory.max", "memory.current").replace("limit_in_bytes", "usage_in_bytes")
                with open(usage_path) as fh:
                    avail = max(0, int(raw) - int(fh.read().strip()))
        except (OSError, ValueError):
            continue
    return avail


def check_memory(what: str, n_voxels: int, bytes_per_voxel: float, chunk_bytes: float) -> None:
    """Raise :class:`InsufficientMemoryError` if the outputs and one chunk would not fit.

    `bytes_per_voxel` is the size of all output maps per voxel, `chunk_bytes` the working memory
    of one chunk.
    """
    need = float(n_voxels) * bytes_per_voxel + chunk_bytes
    avail = available_memory()
    if avail is not None and need > avail:
        raise InsufficientMemoryError(
            f"{what} needs about {need / 2**30:.2f} GiB for its result maps and one chunk of work, "
            f"but only {avail / 2**30:.2f} GiB is available. Fit a mask or a smaller region "
            "(fewer voxels), or lower chunk_size; the input series itself is already in memory."
        )


def check_chunk_size(chunk_size: int) -> int:
    """Validate a ``chunk_size`` keyword (voxels, >= 1)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InputDataError(f"chunk_size must be an integer >= 1 (voxels), got {chunk_size!r}.")
    return int(chunk_size)


def voxel_slabs(
    data: np.ndarray, chunk_size: int, volumes: np.ndarray | None = None, *, whole: bool = False,
    progress: str | None = None,
) -> Iterator[tuple[slice | tuple[slice, ...], np.ndarray]]:
    """Yield ``(index, block)`` over an (..., N) array without copying it as a whole.

    With `progress` (a task name such as ``"ADC fit"``), the voxels done are reported after each
    block through :mod:`dwi_toolkit.core.progress` (unit ``voxel``; the CLI draws a bar), and the
    task ends when the loop ends, normally or not.

    ``block`` has shape (V, N'): the volumes `volumes` (all by default) of the voxels at
    ``index``, flattened in C order, in the dtype of `data` (no cast here). For C-contiguous
    data without a volume selection the blocks are views of `chunk_size` consecutive voxels
    (one view of the whole array with ``whole=True``) and ``index`` is a flat slice; otherwise
    blocks are slabs along the first spatial axis (C order) or the last (Fortran order, as
    nibabel loads NIfTI) of about `chunk_size` voxels (at least one plane), and ``index`` is a
    tuple of spatial slices. Read and write through :func:`take` and :func:`put`.
    """
    if progress is None:
        yield from _slabs(data, chunk_size, volumes, whole)
        return
    from ..core.progress import report

    with report(int(np.prod(data.shape[:-1])), progress, unit="voxel") as task:
        for index, block in _slabs(data, chunk_size, volumes, whole):
            yield index, block
            task.advance(block.shape[0])


def _slabs(data: np.ndarray, chunk_size: int, volumes: np.ndarray | None,
           whole: bool) -> Iterator[tuple[slice | tuple[slice, ...], np.ndarray]]:
    spatial = data.shape[:-1]
    if volumes is None and data.flags.c_contiguous:
        flat = data.reshape(-1, data.shape[-1])
        step = flat.shape[0] if whole else chunk_size
        for v0 in range(0, flat.shape[0], max(step, 1)):
            yield slice(v0, v0 + step), flat[v0:v0 + step]
        return
    if len(spatial) == 0:
        block = np.asarray(data)[None, :]
        yield (), (block if volumes is None else block[:, volumes])
        return
    axis = len(spatial) - 1 if (np.isfortran(data) and len(spatial) > 1) else 0
    plane = int(np.prod(spatial)) // max(spatial[axis], 1)
    step = max(1, chunk_size // max(plane, 1))
    for a0 in range(0, spatial[axis], step):
        index = tuple(slice(a0, min(spatial[axis], a0 + step)) if d == axis else slice(None)
                      for d in range(len(spatial)))
        slab = data[index]
        if volumes is not None:
            slab = slab[..., volumes]
        yield index, np.reshape(slab, (-1, slab.shape[-1]))


def take(spatial_array: np.ndarray, index: slice | tuple[slice, ...]) -> np.ndarray:
    """Values of a spatial array (X, Y, Z) at a block `index`, flattened like the block."""
    if isinstance(index, slice):
        return spatial_array.reshape(-1)[index]
    return spatial_array[index].reshape(-1)


def put(out: np.ndarray, index: slice | tuple[slice, ...], values: np.ndarray, n_spatial: int) -> None:
    """Write flat per-voxel `values` (V, ...) of a block into `out` (spatial + trailing axes)."""
    if isinstance(index, slice):
        out.reshape((-1,) + out.shape[n_spatial:])[index] = values
    else:
        target = out[index]
        target[...] = values.reshape(target.shape)
