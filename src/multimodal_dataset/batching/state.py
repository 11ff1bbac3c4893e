"""Resumable iteration: a dataset's state as a small dict, checked before it is restored,
and the callback that keeps a dataset's epoch equal to ``fit``'s across restarts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import keras

REQUIRED = ("seed", "epoch", "position", "num_samples", "batch_size")
#: Keys whose values must match: another value means other batches in every epoch.
IDENTITY = ("num_samples", "seed", "batch_size", "shuffle")


def checked_state(
    mine: Mapping[str, Any], state: Mapping[str, Any], batches: int
) -> tuple[int, int]:
    """``(epoch, position)`` of ``state``, after checking it belongs to this dataset.

    Args:
        mine: This dataset's own state (``ds.get_state()``).
        state: The state to continue from.
        batches: Batches per epoch of this dataset.

    A state saved by ``n`` processes (``shard=(i, n)``) continues on ``m`` processes
    (elastic resume) when the global batch, ``batch_size x processes``, is the same: the
    global order and the global step are the same, and each process takes its share of
    the step.

    Raises:
        ValueError: For a state from a dataset with other samples, seed, batch size (the
            global batch, across a change in the number of processes) or shuffling (its
            epochs would be different batches), or out of range.
    """
    missing = set(REQUIRED) - set(state)
    if missing:
        raise ValueError(
            f"Not a MultimodalDataset state: missing {sorted(missing)}. Use the dict "
            "that ds.get_state() returns."
        )
    identity: tuple[str, ...] = IDENTITY
    saved_count = int(state.get("shard", (0, 1))[1])
    count = int(mine.get("shard", (0, 1))[1])
    if saved_count != count:
        identity = tuple(k for k in IDENTITY if k != "batch_size")
        saved_global, global_batch = (
            int(state["batch_size"]) * saved_count,
            mine["batch_size"] * count,
        )
        if saved_global != global_batch:
            raise ValueError(
                f"This state was saved by {saved_count} processes with batch_size="
                f"{state['batch_size']} each (a global batch of {saved_global}); this dataset "
                f"is one of {count} with batch_size={mine['batch_size']} (a global batch of "
                f"{global_batch}). The steps of the global order differ, so the stream "
                "cannot continue. Keep the global batch: batch_size="
                f"{saved_global / count:g} on each of {count} processes"
                + (
                    ""
                    if saved_global % count == 0
                    else " (not a whole number: use a process count that divides it)"
                )
                + "."
            )
        if state.get("sharded_by_keras") or mine.get("sharded_by_keras"):
            raise ValueError(
                f"This state was saved by {saved_count} processes and this dataset is one of "
                f"{count}, where Keras shards the dataset itself (auto_shard_dataset): its "
                "positions interleave every process's batches and cannot be carried to "
                "another count. Pass shard=(index, count) to the datasets instead."
            )
    different = [
        f"{key}={state[key]!r} (this dataset: {mine[key]!r})"
        for key in identity
        if key in state and state[key] != mine[key]
    ]
    if different:
        raise ValueError(
            "This state comes from a different dataset: "
            + ", ".join(different)
            + ". Its epochs hold different batches, so the stream cannot continue here. "
            "Build the dataset with the same data, seed, batch_size and shuffle."
        )
    position, epoch = int(state["position"]), int(state["epoch"])
    if not 0 <= position <= batches or epoch < 0:
        raise ValueError(
            f"State epoch={epoch}, position={position} is out of range: an epoch of this "
            f"dataset has {batches} batches."
        )
    return epoch, position


class Resumable(Protocol):
    @property
    def process_batches(self) -> int: ...

    def get_state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...


def fit_epoch_start(epoch: int, steps: int | None, batches: int) -> tuple[int, int]:
    """Where fit epoch ``epoch`` starts in the dataset's stream: ``(epoch, position)``.

    With ``steps_per_epoch`` below the dataset's ``batches``, Keras reads each pass over
    the dataset in fit epochs of ``steps`` batches and one with what is left, then starts
    the next pass: ``ceil(batches / steps)`` fit epochs per dataset epoch.
    """
    if not steps or steps >= batches:
        return epoch, 0
    per_pass = -(-batches // steps)
    return epoch // per_pass, (epoch % per_pass) * steps


class EpochSync(keras.callbacks.Callback):  # type: ignore[misc]
    """Moves the dataset to where Keras's epoch number says it is at the start of every
    epoch: epoch ``k`` of ``fit`` (``steps_per_epoch`` included) always reads the same
    batches, also after a restart."""

    def __init__(self, dataset: Resumable) -> None:
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # Keras's steps count this process's batches (its share when Keras shards the
        # dataset itself), as process_batches does.
        steps = (self.params or {}).get("steps")
        batches = self.dataset.process_batches
        target, position = fit_epoch_start(epoch, steps, batches)
        state = self.dataset.get_state()
        # Already there, or just past it (across an epoch's end too): TensorFlow's tf.data
        # read the next batches ahead, and they are served first.
        ahead = (state["epoch"] - target) * batches + state["position"] - position
        if 0 <= ahead < min(steps or batches, batches):
            return
        self.dataset.set_state(dict(state, epoch=target, position=position))
