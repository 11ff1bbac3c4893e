"""`Inspection`: what a dataset tells about its batches and its epochs, for a person:
``stats`` and ``monitor()`` (where the time goes), ``show_batch()`` (the samples as the
model receives them), ``check(model)`` and ``replacements``.

`MultimodalDataset` inherits these methods from here; each hands its own diagnostic
(`StatsLog`, `InputMonitor`, `show_batch`, `check_model`) what it needs.
"""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Any

import keras

from multimodal_dataset._utils.checks import check_int
from multimodal_dataset.diagnostics.model_check import check_model
from multimodal_dataset.diagnostics.monitoring import InputMonitor, StatsLog
from multimodal_dataset.diagnostics.replacements import ReplacementLog

if TYPE_CHECKING:
    from multimodal_dataset.batching.cursor import EpochCursor
    from multimodal_dataset.batching.layout import BatchLayout
    from multimodal_dataset.batching.sampler import BatchPlan, Sampler
    from multimodal_dataset.engine.parallelism import Parallelism
    from multimodal_dataset.engine.producer import ProducedBatch
    from multimodal_dataset.sources.protocol import Replacement


class Inspection:
    """A dataset's diagnostics (see the module docstring)."""

    _layout: BatchLayout
    _sampler: Sampler
    _cursor: EpochCursor
    _stats: StatsLog
    _parallelism: Parallelism
    _replacements: ReplacementLog

    def _serve(self, plan: BatchPlan) -> ProducedBatch:
        """Produces ``plan``'s batch as ``fit`` would, recording nothing (the dataset's)."""
        raise NotImplementedError

    def _released(self) -> None:
        """Called after drawing: the pools may be released (the dataset's)."""

    @property
    def stats(self) -> list[dict[str, Any]]:
        """Where each epoch's time went, one dict per epoch (oldest first), for logging.

        Always: ``epoch``, ``batches``, ``samples``, ``produce_s`` (seconds producing
        batches) and ``fields_s`` (seconds per field, e.g. ``{"inputs[0]": 4.1, ...}``;
        summed over the workers, so with several they may add up to more than
        ``produce_s``). With `monitor` in ``fit``'s callbacks also: ``steps``, ``train_s``
        (the epoch's training time, validation excluded), ``wait_s`` and ``wait_fraction``
        (how long the training loop waited for batches), ``input_bound`` (waiting took at
        least 20% of it) and ``summary`` (the line the monitor prints). The batches Keras
        reads before training (to build the model) are not counted.
        """
        return copy.deepcopy(self._stats.records)

    def monitor(self, verbose: bool = True) -> keras.callbacks.Callback:
        """A Keras callback that measures how long training waits for this dataset.

        At the end of every epoch it adds the waiting time to `stats` and, with
        ``verbose``, prints one line, e.g. ``epoch 3: input-bound: 63% of training time
        waiting for data; image decoding (inputs[0]) takes 81% of it; try workers=8 or
        cache='DIR' ...``. On JAX and PyTorch Keras reads the dataset in the training
        loop's thread, so all the time spent producing a batch is waited for; on
        TensorFlow a ``tf.data`` thread reads ahead, and a step waits only for a batch
        that was not ready when the step began.

        Example:

        ```python
        model.fit(ds, epochs=5, callbacks=[ds.monitor()])
        ds.stats[-1]["wait_fraction"]
        ```
        """
        workers = self._parallelism.workers
        return InputMonitor(self._stats, type(self).__name__, workers, verbose=verbose)

    def show_batch(self, n: int = 16, path: str | os.PathLike[str] | None = None) -> Any:
        """Draws ``n`` samples as the model receives them, to catch a wrong label, a bad
        crop or a broken tokenizer before training.

        The samples are the first ``n`` of the current epoch's order, gathered as ``fit``
        would (augmentation included) without counting as read: the epoch, the position
        and the epoch reports are unchanged. Each cell shows the image, the text decoded
        from its token ids (``[UNK]`` and ``[PAD]*n`` marked), the numbers (standardised,
        and the original values in brackets when the preprocessing knows them) and the
        label (with the class name where known; none for an inference dataset).

        Args:
            n: How many samples to draw (at most the dataset's).
            path: Where to write the grid as a PNG; None writes nothing.

        Returns:
            The matplotlib ``Figure`` (a notebook displays it).

        Raises:
            ImportError: Without matplotlib, with the install hint (the ``plot`` extra).
        """
        from multimodal_dataset.diagnostics.showing import show_batch

        sampler = self._sampler
        n = min(check_int(n, "n", what="samples to draw"), sampler.num_samples)
        epoch = self._cursor.epoch
        plans = (sampler.plan(epoch, position) for position in range(sampler.num_batches))
        try:
            return show_batch(self._serve, plans, n, self._layout, self._class_names(), path)
        finally:
            self._released()

    def _class_names(self) -> list[list[Any] | None]:
        """For each target, the names of its class ids, where the dataset knows them."""
        return []

    @property
    def replacements(self) -> list[Replacement]:
        """The samples sources replaced so far (``on_error="replace"``), once per epoch:
        the first 1,000 of each epoch, the 10,000 most recent in all (each epoch's
        `ReplacedSamplesWarning` counts every one)."""
        return self._replacements.all

    def check(self, model: keras.Model) -> None:
        """Checks that this dataset fits ``model``'s inputs (and outputs).

        Compares the number, order or names, per-sample shapes and integer/float kind of
        the inputs with ``model.inputs``, and the number or names of targets with
        ``model.outputs``.

        Raises:
            ValueError: One error listing every mismatch and how to fix it.
        """
        check_model(self._layout, model)
