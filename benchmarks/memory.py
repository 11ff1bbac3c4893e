"""Memory: peak anonymous RSS while iterating one epoch of a memory-mapped dataset of at
least 2 GB. File-backed pages (the page cache) are not counted: they are the file itself,
and the kernel reclaims them under pressure; anonymous memory is what the loader holds."""

from __future__ import annotations

import numpy as np

from benchmarks.common import DATA, IMAGE_SHAPE, Settings, in_fresh_process

BATCH_SIZE = 256


def big_npy(size_bytes: int):
    """A float32 image array of ``size_bytes`` as .npy, written a chunk at a time, once."""
    rows = int(size_bytes // (np.prod(IMAGE_SHAPE) * 4))
    path = DATA / f"images_{rows}.npy"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        out = np.lib.format.open_memmap(partial, "w+", np.float32, (rows, *IMAGE_SHAPE))
        for start in range(0, rows, 2048):
            stop = min(start + 2048, rows)
            out[start:stop] = np.arange(start, stop, dtype=np.float32)[:, None, None, None]
        out.flush()
        del out
        partial.rename(path)
    return path, rows


def measure_epoch(path: str, rows: int | str) -> dict:
    """Iterates one epoch and returns the growth of anonymous RSS (run in a fresh process,
    so that memory freed by earlier benchmarks cannot hide what the epoch allocates)."""
    from multimodal_dataset import MultimodalDataset
    from multimodal_dataset.testing import anonymous_rss_mib

    ds = MultimodalDataset(path, np.arange(int(rows)), batch_size=BATCH_SIZE, seed=0)
    before = peak = anonymous_rss_mib()
    for i in range(len(ds)):
        x, y = ds[i]
        assert (x[:, 0, 0, 0] == y).all()
        peak = max(peak, anonymous_rss_mib())
        del x, y
    return {"before_mb": round(before, 1), "rss_growth_mb": round(peak - before, 1)}


def run(settings: Settings) -> dict:
    path, rows = big_npy(settings.memmap_bytes)
    result = in_fresh_process("memory", "measure_epoch", path, rows)
    size_mb = path.stat().st_size / 2**20
    print(
        f"  memory    memory-mapped epoch of {size_mb:,.0f} MiB: "
        f"anonymous RSS grew {result['rss_growth_mb']:.1f} MiB",
        flush=True,
    )
    return {"file_mb": round(size_mb, 1), "batch_size": BATCH_SIZE, **result}
