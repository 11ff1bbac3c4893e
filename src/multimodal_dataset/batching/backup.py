"""`DatasetBackup`: Keras's ``BackupAndRestore`` that also saves where the dataset's stream
is, so that a run killed in the middle of an epoch resumes at the exact next batch.

Keras's ``BackupAndRestore(save_freq=N)`` saves the weights (and the optimizer) every
``N`` steps, but restores only the epoch number: the interrupted epoch starts again from
its first batch, so the batches before the kill are trained twice and the weights differ
from an uninterrupted run. `DatasetBackup` saves the dataset's position with the weights
(``dataset_state.json`` next to Keras's files, written after them and checked against
them) and, on restart, shortens the interrupted epoch to the batches it had left: Keras's
epoch ends when the dataset's does (the dataset reports that many batches for that
epoch; Keras's "ran out of data" warning, which says nothing wrong here, is silenced for
that epoch alone). Epoch ``k`` of ``fit`` stays the dataset's epoch ``k``, as with
`EpochSync`, which this callback includes.

The position saved is the number of steps Keras trained, not how far the dataset was
read: TensorFlow's ``tf.data`` reads batches ahead, and those were not trained on.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Protocol

import keras

from multimodal_dataset.batching.state import EpochSync, Resumable, fit_epoch_start

#: The file, next to Keras's ``latest.weights.h5``, that holds the dataset's position.
STATE_FILE = "dataset_state.json"
#: What Keras warns when the shortened epoch's batches end (expected there).
_RAN_OUT = "Your input ran out of data"


class ShortenableEpoch(Resumable, Protocol):
    def serve_keras_epoch(self, steps: int | None) -> None: ...


class DatasetBackup(keras.callbacks.BackupAndRestore):  # type: ignore[misc]
    """``keras.callbacks.BackupAndRestore`` with the dataset's position (see the module
    docstring); `MultimodalDataset.backup_callback` makes one.

    Args:
        dataset: The training dataset.
        backup_dir: Where the backup lives (Keras's files and ``dataset_state.json``).
        save_freq: ``"epoch"``, or a number of steps between backups (mid-epoch resume).
        double_checkpoint: Keep the previous backup too (Keras's option).
        delete_checkpoint: Delete the backup when ``fit`` ends normally (Keras's option).

    Raises:
        ValueError: At the start of ``fit``: for ``save_freq`` in steps with
            ``steps_per_epoch`` below ``len(ds)`` (the fit epochs then split the dataset's
            epochs, and a shortened fit epoch would shift every later one: back up per
            epoch there, ``save_freq="epoch"``); for a dataset state that does not match
            Keras's backup beside it.
    """

    def __init__(
        self,
        dataset: ShortenableEpoch,
        backup_dir: str | os.PathLike[str],
        save_freq: str | int = "epoch",
        double_checkpoint: bool = False,
        delete_checkpoint: bool = True,
    ) -> None:
        super().__init__(os.fspath(backup_dir), save_freq, double_checkpoint, delete_checkpoint)
        self.dataset = dataset
        self._sync = EpochSync(dataset)
        self._state_path = os.path.join(os.fspath(backup_dir), STATE_FILE)
        self._resume: dict[str, Any] | None = None  # the backup to continue, if any
        self._offset = 0  # steps of the current fit epoch trained before a restart
        self._silenced: tuple[Any, ...] | None = None

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self._sync.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        self._sync.set_params(params)

    # ------------------------------------------------------------------------ restoring

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)  # the weights, the optimizer, the epoch number
        steps = (self.params or {}).get("steps")
        batches = self.dataset.process_batches
        if self.save_freq != "epoch" and steps and steps < batches:
            raise ValueError(
                f"backup_callback(save_freq={self.save_freq}) resumes in the middle of an "
                f"epoch, which needs whole-epoch fit; this fit has steps_per_epoch={steps} "
                f"below len(ds)={batches}, so its epochs split the dataset's, and a "
                "shortened one would shift every later epoch. Use save_freq='epoch' (each "
                "fit epoch of steps_per_epoch batches is a backup point already), or fit "
                "without steps_per_epoch."
            )
        self._resume = None
        if not os.path.exists(self._state_path):
            return
        with open(self._state_path, encoding="utf-8") as f:
            saved = json.load(f)
        keras_meta = os.path.join(self.backup_dir, "training_metadata.json")
        keras_epoch = None
        if os.path.exists(keras_meta):
            with open(keras_meta, encoding="utf-8") as f:
                keras_epoch = json.load(f).get("epoch")
        if keras_epoch != saved["fit_epoch"]:
            raise ValueError(
                f"The backup in {self.backup_dir} is inconsistent: Keras's weights are of "
                f"fit epoch {keras_epoch} but {STATE_FILE} is of fit epoch "
                f"{saved['fit_epoch']} (the run was killed while saving). Restore the "
                "previous backup (double_checkpoint=True keeps one) or delete the folder "
                "to start again."
            )
        self._resume = saved

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._current_epoch = epoch  # Keras's own counts from 0 again after a restart
        self._offset = 0
        resume, self._resume = self._resume, None
        if resume is None or resume["fit_epoch"] != epoch or not resume["steps"]:
            self._sync.on_epoch_begin(epoch, logs)
            return
        # Continue the interrupted epoch at its next batch, and end it with the dataset's.
        self.dataset.set_state(resume["state"])
        batches = self.dataset.process_batches
        self._offset = int(resume["steps"])
        self.dataset.serve_keras_epoch(batches - self._offset)
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:  # read once: nothing per step
            self._iterations_at_resume = int(keras.ops.convert_to_numpy(optimizer.iterations))
        warnings.filterwarnings("ignore", message=_RAN_OUT, category=UserWarning)
        self._silenced = warnings.filters[0]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.dataset.serve_keras_epoch(None)
        optimizer = getattr(self.model, "optimizer", None)
        if self._iterations_at_resume is not None and optimizer is not None:
            # On TensorFlow, the step that finds the shortened epoch's data run out still
            # counts an optimizer iteration (Adam's bias correction would then differ from
            # the uninterrupted run's): put back the count of the steps trained.
            trained = (self._trained or self._offset) - self._offset
            expected = self._iterations_at_resume + trained
            if int(keras.ops.convert_to_numpy(optimizer.iterations)) != expected:
                optimizer.iterations.assign(expected)
            self._iterations_at_resume = None
        if self._silenced is not None:
            filters: list[Any] = warnings.filters  # type: ignore[assignment]
            if self._silenced in filters:
                filters.remove(self._silenced)
            self._silenced = None
            warnings._filters_mutated()  # type: ignore[attr-defined]
        self._offset = 0
        self._trained = None
        super().on_epoch_end(epoch, logs)  # saves, with save_freq="epoch"

    # -------------------------------------------------------------------------- saving

    _trained: int | None = None

    #: The optimizer's step count when the shortened epoch began (restored with it).
    _iterations_at_resume: int | None = None

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._trained = self._offset + batch + 1  # steps of this fit epoch trained
        super().on_train_batch_end(batch, logs)

    def _save_model(self) -> None:
        fit_epoch = self._current_epoch
        # Mid-epoch, the steps trained; at an epoch's end 0 (Keras counts the next epoch).
        steps = self._trained or 0
        batches = self.dataset.process_batches
        if steps >= batches:
            return  # the epoch's last step: on_epoch_end comes next (a resume starts there)
        target, start = fit_epoch_start(fit_epoch, (self.params or {}).get("steps"), batches)
        state = dict(self.dataset.get_state(), epoch=target, position=start + steps)
        super()._save_model()
        record = {"fit_epoch": fit_epoch, "steps": steps, "state": state}
        temporary = self._state_path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(temporary, self._state_path)
