"""`EpochCursor`: where the batch stream is, and how Keras's epochs map onto the dataset's.

The dataset's epoch advances only once it was read whole. A Keras epoch cut short by
``steps_per_epoch`` ends with the dataset's epoch unfinished, and the next Keras epoch
continues it. While Keras runs an epoch, its ``k``-th request is batch ``k`` of the
dataset's order whatever index it asks for (Keras reorders requests with an unseeded
shuffle); outside, ``ds[i]`` is batch ``i``. The batches Keras reads to build a model
before training are rewound and served again as the epoch's first. Pure bookkeeping: no
threads, no Keras (the dataset says when Keras calls).
"""

from __future__ import annotations


class EpochCursor:
    """The current epoch, how far it was read, and the Keras epoch in progress.

    Args:
        batches: How many batches Keras reads of each epoch in this process.
        in_order: Whether requests inside a Keras epoch are served in order (False when
            Keras shards the dataset itself and asks for exactly this process's batches).

    Attributes:
        epoch: The epoch whose order is served.
        position: One past the highest batch index read in the epoch.
        in_epoch: Between Keras's ``on_epoch_begin`` and ``on_epoch_end``.
        served: Batches of the epoch served in Keras's epochs.
        begun_at: ``served`` when the Keras epoch began (where a rewind returns to).
        read_ahead: Whether another thread (tf.data, a prefetching trainer) read batches
            of the epoch ahead of the training steps.
        keras_steps: How many batches the dataset tells Keras the current Keras epoch
            has (``num_batches``), when not ``batches``: the rest of an epoch resumed in
            its middle (`DatasetBackup`). Cleared when that Keras epoch ends.
    """

    def __init__(self, batches: int, in_order: bool) -> None:
        self.batches = batches
        self.in_order = in_order
        self.epoch = 0
        self.position = 0
        self.in_epoch = False
        self.served = 0
        self.begun_at = 0
        self.read_ahead = False
        self.keras_steps: int | None = None

    @property
    def read_whole(self) -> bool:
        """Whether the epoch was read whole in Keras's epochs (the next request or
        ``on_epoch_end`` finishes it)."""
        return self.served >= self.batches

    def begin(self) -> None:
        """A Keras epoch begins: it continues the dataset's epoch where the last one stopped."""
        self.in_epoch = True
        self.begun_at = self.served

    def serve(self, position: int, read_ahead: bool) -> int:
        """Inside a Keras epoch, the batch to serve for a request of ``position`` (call
        `advance` first when `read_whole`); ``read_ahead`` says whether the request comes
        from a thread that reads ahead of the training steps."""
        if self.in_order:
            position = self.served
        self.served += 1
        self.read_ahead = self.read_ahead or read_ahead
        return position

    def served_batch(self, position: int) -> None:
        """Notes that batch ``position`` was read."""
        self.position = max(self.position, position + 1)

    def rewind(self) -> bool:
        """Keras starts ``fit``, ``evaluate`` or ``predict``: the batches it read since its
        last epoch (to build the model) are served again. Returns whether batches read
        ahead of the training steps were lost (the epoch is left unfinished mid-way)."""
        if self.in_epoch:
            self.served = self.begun_at
            self.position = min(self.position, self.begun_at)
        lost = 0 < self.served < self.batches and self.read_ahead
        if lost:
            self.read_ahead = False
        return lost

    def end(self) -> None:
        """The Keras epoch ended."""
        self.in_epoch = False
        self.keras_steps = None

    def advance(self) -> None:
        """Moves to the next epoch, from its first batch."""
        self.epoch += 1
        self.position = self.served = self.begun_at = 0
        self.read_ahead = False

    def restore(self, epoch: int, position: int) -> None:
        """Continues from batch ``position`` of ``epoch`` (`MultimodalDataset.set_state`)."""
        self.epoch, self.position = epoch, position
        self.served = self.begun_at = position
