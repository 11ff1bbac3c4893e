"""How Keras's training loop reads a `PyDataset`, where the dataset must know it: whether
batches are read ahead of the training steps in another thread, and whether an
``on_epoch_end`` call is the one ``EpochIterator.reset`` makes when ``fit``, ``evaluate``
or ``predict`` start (not the end of an epoch)."""

from __future__ import annotations

import functools
import sys
import threading
import types
import warnings

import keras


def reads_ahead() -> bool:
    """Whether the batch being read now is read ahead of the training steps: from a
    thread other than the main one (tf.data), or by a trainer that prefetches."""
    return trainer_prefetches() or threading.current_thread() is not threading.main_thread()


@functools.cache
def trainer_prefetches() -> bool:
    """Whether Keras's training loop reads batches ahead in its own thread (the JAX
    trainer of older Keras prefetches two batches)."""
    if keras.backend.backend() != "jax":
        return False
    from keras.src.backend.jax import trainer

    return hasattr(trainer.JAXEpochIterator, "_prefetch_numpy_iterator")


def called_by_keras_reset(depth: int = 2) -> bool:
    """Whether the ``on_epoch_end`` that calls this was called by Keras's
    ``EpochIterator.reset`` (through the adapter, ``depth`` frames up): the call that
    starts ``fit``, ``evaluate`` and ``predict``, not the end of an epoch."""
    frame: types.FrameType | None = sys._getframe(depth)
    for _ in range(3):
        if frame is None:
            return False
        module = frame.f_globals.get("__name__", "")
        if frame.f_code.co_name == "reset" and module.startswith("keras"):
            return True
        frame = frame.f_back
    return False


class PartialEpochWarning(UserWarning):
    """A Keras call started in the middle of an epoch whose read-ahead batches (tf.data
    on TensorFlow) were not all trained on; see `MultimodalDataset.on_epoch_end`."""


def warn_read_ahead_lost(epoch: int, served: int, batches: int) -> None:
    """Warns that ``fit``/``evaluate``/``predict`` starts in the middle of ``epoch``
    after Keras read ``served`` of its ``batches`` ahead of the training steps."""
    warnings.warn(
        f"MultimodalDataset: a new fit, evaluate or predict starts in the middle of epoch "
        f"{epoch} ({served} of its {batches} batches read; the last one's steps_per_epoch "
        "was below len(ds)). Keras read those batches ahead of the training steps (tf.data "
        "on TensorFlow, a prefetch queue on JAX with Keras before 3.9), so some of them "
        "were never trained on; the epoch continues after them. To train on every sample "
        "exactly once per epoch, run the epochs in one call, fit(epochs=..., "
        "steps_per_epoch=...), or start each call at an epoch boundary "
        "(ds.set_state(dict(ds.get_state(), epoch=ds.epoch + 1, position=0))).",
        PartialEpochWarning,
        stacklevel=3,
    )
