"""`BatchingView`: what a dataset's batching says about it, and its resumable state.

`MultimodalDataset` inherits these read-only properties (the seed, the epoch, the batch
size, the shard, the batch structure, ``element_spec``) and ``get_state`` /
``set_state`` / ``epoch_callback`` from here: all of them answer from the batch plan
alone (the `Sampler`, the `EpochCursor`, the `BatchLayout`), never from the data.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np

from multimodal_dataset.batching.cursor import EpochCursor
from multimodal_dataset.batching.layout import BatchLayout
from multimodal_dataset.batching.sampler import Sampler
from multimodal_dataset.batching.sharding import Shards
from multimodal_dataset.batching.state import EpochSync, checked_state
from multimodal_dataset.batching.structure import ArraySpec, Group


class BatchingView:
    """The batch plan's view of a dataset (see the module docstring)."""

    _sampler: Sampler
    _cursor: EpochCursor
    _layout: BatchLayout
    _shards: Shards

    def __len__(self) -> int:
        """The number of batches per epoch."""
        return self._sampler.num_batches

    def _discard_prefetched(self) -> None:
        """Drops batches produced ahead for the position being left (the dataset's)."""

    # ----------------------------------------------------------------------- public API

    def batch_indices(self, index: int) -> np.ndarray:
        """The sample indices that make up batch ``index`` of the current epoch.

        Raises:
            IndexError: If ``index`` is not in ``[-len(ds), len(ds))``.
        """
        return self._sampler.plan(self._cursor.epoch, self._sampler.check_index(index)).indices

    @property
    def element_spec(self) -> tuple[Any, ...]:
        """The structure of every batch with an `ArraySpec` per array, read from no data.

        For example ``((ArraySpec((None, 32, 32, 3), 'float32', 'inputs[0]'), ...),
        ArraySpec((None,), 'int32', 'targets'))``.
        """
        return self._layout.element_spec

    @property
    def seed(self) -> int:
        """The seed of the shuffle order (drawn at construction when ``seed=None``)."""
        return self._sampler.seed

    @property
    def epoch(self) -> int:
        """The epoch whose order ``ds[i]`` serves now (0 until the first ``on_epoch_end``)."""
        return self._cursor.epoch

    @property
    def num_samples(self) -> int:
        """The number of samples in the dataset."""
        return self._sampler.num_samples

    @property
    def batch_size(self) -> int:
        """Samples per batch (the last batch may be smaller unless ``drop_remainder``)."""
        return self._sampler.batch_size

    @property
    def shuffle(self) -> bool:
        return self._sampler.shuffle

    @property
    def drop_remainder(self) -> bool:
        return self._sampler.drop_remainder

    @property
    def pad_remainder(self) -> bool:
        return self._sampler.pad

    @property
    def shard(self) -> tuple[int, int]:
        """``(index, count)``: which shard of every epoch this process reads (by itself,
        or through Keras's own sharding when `sharded_by_keras`)."""
        return self._shards[0], self._shards[1]

    @property
    def sharded_by_keras(self) -> bool:
        """Whether Keras shards this dataset itself (Keras 3.16+, ``auto_shard_dataset``):
        ``len(ds)`` then counts every process's batches and Keras reads this process's."""
        return self._sampler.serve_all_shards

    # --------------------------------------------------------------------- resumable state

    def get_state(self) -> dict[str, Any]:
        """Where the batch stream is: enough, with the same data, to continue it exactly.

        ``position`` is one past the highest batch index read in the current epoch: the
        next batch of an in-order loop (``for i in range(position, len(ds))``); with
        ``shard=(i, n)`` it counts global steps, so a state saved by ``n`` processes
        continues on another number of them with the same global batch (see
        `set_state`). ``fit`` resumes per epoch (`epoch_callback`) or mid-epoch
        (`backup_callback`).
        """
        return {
            "seed": self.seed,
            "epoch": self._cursor.epoch,
            "position": self._cursor.position,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "shard": list(self.shard),
            "sharded_by_keras": self.sharded_by_keras,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continues the batch stream from a `get_state` of a dataset like this one.

        A state saved by ``n`` processes (``shard=(i, n)``) continues on ``m`` processes
        when ``batch_size`` keeps the global batch (``batch_size x processes``): every
        process then reads its share of the same next global step (elastic resume).

        Raises:
            ValueError: If the state comes from a dataset with other samples, seed, batch
                size (the global batch, across process counts) or shuffling (its epochs
                would be different batches), or has a position past the end of an epoch.
        """
        epoch, position = checked_state(self.get_state(), state, len(self))
        cursor = self._cursor
        if (epoch, position) != (cursor.epoch, cursor.position):
            self._discard_prefetched()
        cursor.restore(epoch, position)

    @property
    def num_batches(self) -> int:
        """The batches Keras reads in its current epoch: ``len(ds)``, or what is left of
        an epoch resumed in its middle by `backup_callback`."""
        steps = self._cursor.keras_steps
        return len(self) if steps is None else steps

    def serve_keras_epoch(self, steps: int | None) -> None:
        """Tells Keras the next epoch has ``steps`` batches (None: ``len(ds)``), until it
        ends: how `backup_callback` ends a resumed epoch with the dataset's."""
        self._cursor.keras_steps = steps

    def backup_callback(
        self,
        directory: str | os.PathLike[str],
        save_freq: str | int = "epoch",
        *,
        double_checkpoint: bool = False,
        delete_checkpoint: bool = True,
    ) -> keras.callbacks.Callback:
        """``keras.callbacks.BackupAndRestore`` that also saves this dataset's position,
        so that a run killed mid-epoch resumes at the exact next batch (see `DatasetBackup`).

        With ``save_freq=N`` it backs up the weights, the optimizer and the dataset's
        position every ``N`` steps; restarted with the same call, ``fit`` continues the
        interrupted epoch from the step after the backup and trains on exactly the
        batches the uninterrupted run would have. It includes `epoch_callback`: pass it
        instead of both. The model must be built before ``fit`` (Keras's rule).

        Example:

        ```python
        model.fit(ds, epochs=10, callbacks=[ds.backup_callback("backup", save_freq=100)])
        ```

        Args:
            directory: The backup folder (one per run).
            save_freq: ``"epoch"``, or the steps between backups.
            double_checkpoint: Keep the previous backup too.
            delete_checkpoint: Delete the backup when ``fit`` ends normally.
        """
        from multimodal_dataset.batching.backup import DatasetBackup

        return DatasetBackup(self, directory, save_freq, double_checkpoint, delete_checkpoint)

    def epoch_callback(self) -> keras.callbacks.Callback:
        """A Keras callback that makes this dataset serve Keras's epoch number.

        ``fit`` numbers epochs from ``initial_epoch``; ``keras.callbacks.BackupAndRestore``
        restores that number after a crash. With this callback, epoch ``k`` of ``fit`` is
        always this dataset's epoch ``k``, so a resumed run sees exactly the batches the
        uninterrupted run would have seen (``fit``'s own batch shuffle changes nothing: the
        dataset serves its own order).

        Example:

        ```python
        model.fit(
            ds, epochs=10,
            callbacks=[keras.callbacks.BackupAndRestore("backup"), ds.epoch_callback()],
        )
        ```
        """
        return EpochSync(self)

    @property
    def process_batches(self) -> int:
        """How many batches Keras reads of each epoch in this process: ``len(ds)``, or this
        process's share of it when Keras shards the dataset itself (`sharded_by_keras`)."""
        sampler = self._sampler
        if sampler.serve_all_shards:
            return sampler.num_batches // sampler.shard_count
        return sampler.num_batches

    @property
    def layout(self) -> BatchLayout:
        """The groups of every batch (inputs, targets, weights) and how they are packed."""
        return self._layout

    @property
    def input_structure(self) -> Group:
        """How the inputs are packed: one array, a tuple, or a dict (with its keys)."""
        return self._layout.inputs

    @property
    def target_structure(self) -> Group | None:
        return self._layout.targets

    @property
    def weight_structure(self) -> Group | None:
        return self._layout.weights

    def __repr__(self) -> str:
        specs = ", ".join(_describe(f.spec) for f in self._layout.fields)
        return (
            f"MultimodalDataset({specs}; {self.num_samples} samples, "
            f"batch_size={self.batch_size}, {len(self)} batches, shuffle={self.shuffle}, "
            f"seed={self.seed}, epoch={self.epoch})"
        )


def _describe(spec: ArraySpec) -> str:
    return f"{spec.name}: {spec.sample_shape} {spec.dtype}"
