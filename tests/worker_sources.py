"""Sources and functions that tests run in spawned processes. A spawned process imports
the module that defines what it unpickles, so they live here, next to nothing but numpy
and the package: such a process starts in a fraction of a second, without Keras or a
backend (which every test module importing conftest brings), as a worker for the
package's own sources does."""

from __future__ import annotations

import os
import signal

import numpy as np

from multimodal_dataset.sources.protocol import Source


class UnpicklableError(Exception):
    """Needs two arguments, so unpickling it (with one) fails in the main process."""

    def __init__(self, sample, reason):
        super().__init__(f"sample {sample}: {reason}")


class Failing(Source):
    """Ids 0..n-1; sample ``bad`` raises an unpicklable error or kills its process."""

    def __init__(self, n, bad, how):
        self.n, self.bad, self.how = n, bad, how
        self.parent = os.getpid()  # never kill the test process itself

    @property
    def shape(self):
        return (self.n, 1)

    @property
    def dtype(self):
        return np.dtype("float32")

    def gather(self, indices, context):
        if self.bad in indices:
            if self.how == "kill" and os.getpid() != self.parent:
                os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does
            if self.how == "unpicklable":
                raise UnpicklableError(self.bad, "the custom error's message")
        return indices[:, None].astype(np.float32)


class Squares(Source):
    """Sample i is [i, i*i]; samples in ``bad`` cannot be read."""

    def __init__(self, n, bad=(), on_error="raise", dtype="float32"):
        self.n, self.bad, self.on_error, self._dtype = n, set(bad), on_error, np.dtype(dtype)

    @property
    def shape(self):
        return (self.n, 2)

    @property
    def dtype(self):
        return self._dtype

    def gather(self, indices, context):
        out = np.stack([indices, indices**2], axis=1).astype("float32")
        for k, i in enumerate(indices):
            if int(i) in self.bad:
                out[k] = 0
                self.bad_sample(context, int(i), f"square {int(i)} is unreadable")
        return out


class ThirdBatchRaises(Source):
    """Keras's ExceptionPyDataset: 12 samples, the third batch of 4 raises."""

    @property
    def shape(self):
        return (12, 1)

    @property
    def dtype(self):
        return np.dtype("float32")

    def gather(self, indices, context):
        if 8 in indices:
            raise ValueError("Expected exception")
        return np.ones((len(indices), 1), "float32")


def fill_image_cache(paths, cache, order, barrier):
    """A process filling an 8x8 uint8 image cache in the given order, three at a time,
    once every other process is ready."""
    from multimodal_dataset import GatherContext, ImageFiles

    barrier.wait()  # every process starts filling at once
    source = ImageFiles(paths, (8, 8), dtype="uint8", cache=cache)
    for start in range(0, len(order), 3):
        source.gather(np.asarray(order[start : start + 3]), GatherContext())


class DiesOnce(Source):
    """Ids 0..n-1 as images of 4x4x3 floats; the first process to gather sample ``bad``
    kills itself (SIGKILL, as the out-of-memory killer does), once: ``marker`` is a file
    it creates first, so that the batch succeeds when produced again."""

    def __init__(self, n, bad, marker):
        self.n, self.bad, self.marker = n, bad, str(marker)
        self.parent = os.getpid()

    @property
    def shape(self):
        return (self.n, 4, 4, 3)

    @property
    def dtype(self):
        return np.dtype("float32")

    def gather(self, indices, context):
        if self.bad in indices and os.getpid() != self.parent:
            try:
                with open(self.marker, "x"):
                    pass
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        values = np.asarray(indices, np.float32)[:, None, None, None]
        return np.broadcast_to(values, (len(indices), 4, 4, 3)) / self.n
