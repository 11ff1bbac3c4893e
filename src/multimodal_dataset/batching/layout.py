"""`BatchLayout`: the inputs, targets and sample weights of a dataset as the groups of
arrays that every batch packs, with their lengths checked and the padding weights added.

The dataset gathers one array per field (in `fields` order) and hands them to `pack`,
which zeroes the padding's weights and packs ``(x,)``, ``(x, y)`` or ``(x, y, w)``;
`element_spec` gives the same structure of `ArraySpec`s without reading any data.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from multimodal_dataset.batching.order import check_seed, draw_seed
from multimodal_dataset.batching.padding import Padding
from multimodal_dataset.batching.sampler import Sampler
from multimodal_dataset.batching.sharding import Shards
from multimodal_dataset.batching.structure import Field, Group, make_group
from multimodal_dataset.sources.arrays import ArraySource


@dataclass(frozen=True)
class BatchLayout:
    """The groups of a batch and how gathered arrays become one.

    Attributes:
        inputs: The model inputs: one array, a tuple, or a dict keyed by input name.
        targets: The targets, or None for inference.
        weights: The sample weights (the user's, or ones added for padding), or None.
        num_samples: How many samples every array has.
        pads: Whether the weights carry the zero weights of padding samples.
    """

    inputs: Group
    targets: Group | None
    weights: Group | None
    num_samples: int
    pads: bool = False

    @classmethod
    def build(
        cls,
        inputs: Any,
        targets: Any = None,
        sample_weights: Any = None,
        *,
        floatx: str,
        pad_remainder: bool = False,
        drop_remainder: bool = False,
    ) -> BatchLayout:
        """Normalises the user's structures and checks that they fit together.

        Raises:
            ValueError: For arrays of unequal length, no samples, weights without targets,
                and padding that contradicts the other options.
            TypeError: For structures nested more than one level and unusable dtypes.
        """
        input_group = make_group(inputs, "inputs", floatx)
        target_group = None if targets is None else make_group(targets, "targets", floatx)
        weight_group = None
        if sample_weights is not None:
            if target_group is None:
                raise ValueError(
                    "sample_weights were given without targets. Keras weighs the loss of each "
                    "sample against its target, so pass targets too: "
                    "MultimodalDataset(inputs, targets, sample_weights)."
                )
            weight_group = _weights_group(sample_weights, input_group, floatx)
        groups = tuple(g for g in (input_group, target_group, weight_group) if g is not None)
        num_samples = _common_length(groups)
        if pad_remainder:
            if drop_remainder:
                raise ValueError(
                    "drop_remainder=True and pad_remainder=True contradict each other: drop "
                    "the last partial step, or pad it with zero-weight samples, not both."
                )
            if target_group is None:
                raise ValueError(
                    "pad_remainder=True pads the last batch with samples of weight 0, which "
                    "only training and evaluation (with targets) can ignore. For inference, "
                    "leave it False: model.predict accepts a partial last batch."
                )
            if weight_group is None:
                # Weight 1 for every real sample, 0 for the padding.
                ones = np.ones(num_samples, dtype=floatx)
                source = ArraySource(ones, "sample_weights", ones.dtype)
                weight_group = Group("single", (Field("sample_weights", source),))
        return cls(input_group, target_group, weight_group, num_samples, bool(pad_remainder))

    def sampler(
        self,
        batch_size: int,
        shuffle: bool | None,
        seed: int | None,
        drop_remainder: bool,
        pad_remainder: bool,
        shards: Shards,
        group_by_length: bool | int | str,
    ) -> Sampler:
        """The `Sampler` of this layout's batches (the arguments are the dataset's):
        ``shuffle=None`` shuffles when there are targets, ``seed=None`` draws one, and the
        variable-length fields are padded per step.

        Raises:
            ValueError: For ``group_by_length`` without shuffling, and what `Sampler` and
                `grouping_ranks` refuse.
        """
        seed = draw_seed() if seed is None else check_seed(seed)
        if shuffle is None:
            shuffle = self.targets is not None
        if group_by_length is not False and not shuffle:
            raise ValueError(
                "group_by_length reorders the samples into batches of similar length, but "
                "shuffle=False keeps them in order (for predict). Pass shuffle=True, or "
                "leave group_by_length=False."
            )
        shard_index, shard_count, keras_shards = shards
        padding = Padding(
            [(f.buckets, f.array.lengths) if f.buckets is not None else None for f in self.fields]
        )
        return Sampler(
            self.num_samples,
            batch_size,
            bool(shuffle),
            seed,
            drop_remainder,
            shard_index,
            shard_count,
            pad_remainder,
            serve_all_shards=keras_shards,
            padding=padding,
            group_ranks=grouping_ranks(self, group_by_length),
        )

    @functools.cached_property
    def groups(self) -> tuple[Group, ...]:
        """The groups present, in batch order: inputs, then targets, then weights."""
        return tuple(g for g in (self.inputs, self.targets, self.weights) if g is not None)

    @functools.cached_property
    def _spans(self) -> tuple[tuple[Group, int, int], ...]:
        """Each group with the slice of the gathered arrays it packs (batch assembly's
        hot path: computed once)."""
        spans, start = [], 0
        for group in self.groups:
            spans.append((group, start, start + len(group.fields)))
            start += len(group.fields)
        return tuple(spans)

    @property
    def fields(self) -> tuple[Field, ...]:
        """Every array of a batch, in the order `pack` takes them."""
        return tuple(f for g in self.groups for f in g.fields)

    @property
    def element_spec(self) -> tuple[Any, ...]:
        """The structure of every batch with an `ArraySpec` per array, read from no data."""
        return tuple(group.spec for group in self.groups)

    def pack(self, arrays: Sequence[np.ndarray], real: int | None = None) -> tuple[Any, ...]:
        """One batch from one gathered array per field.

        Args:
            arrays: Freshly gathered arrays, in `fields` order (the weights are written to).
            real: How many samples are real when the rest is padding (weighted 0).
        """
        if self.pads and real is not None and real < len(arrays[-1]):
            arrays[-1][real:] = 0  # the padding's sample weights (a fresh gathered copy)
        return tuple([group.pack(arrays[start:stop]) for group, start, stop in self._spans])


def _weights_group(sample_weights: Any, inputs: Group, floatx: str) -> Group:
    group = make_group(sample_weights, "sample_weights", floatx)
    if group.kind != "single":
        raise TypeError(
            "sample_weights must be one array of per-sample weights, shape (n,) or "
            f"(n, timesteps); got a {group.kind} of {len(group.fields)} arrays."
        )
    field = group.fields[0]
    if field.array.ndim > 2:
        hint = ""
        if inputs.kind == "single":
            hint = (
                " If you meant it as a model input, note that MultimodalDataset(a, b, c) reads "
                "b as targets and c as sample_weights: pass the inputs as one tuple, "
                "MultimodalDataset((a, b, c), targets=y)."
            )
        raise ValueError(
            f"sample_weights must have shape (n,) or (n, timesteps); got shape "
            f"{field.array.shape}.{hint}"
        )
    # Weights scale a loss: always floating, whatever the array's dtype.
    if isinstance(field.array, ArraySource):
        array = field.array
        as_float = ArraySource(
            array.array, field.name, np.dtype(floatx), False, array.check_overflow
        )
        field = Field(field.name, as_float)
    return Group("single", (field,))


def _common_length(groups: tuple[Group, ...]) -> int:
    lengths = {f.name: len(f.array) for g in groups for f in g.fields}
    distinct = set(lengths.values())
    if len(distinct) > 1:
        listing = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(
            "Every array must have the same number of samples (its first dimension), but "
            f"{listing}. Make sure each sample has one entry in every array."
        )
    num_samples = distinct.pop()
    if num_samples == 0:
        names = ", ".join(lengths)
        raise ValueError(f"The dataset has zero samples ({names} are empty); give at least one.")
    return num_samples


def grouping_ranks(layout: BatchLayout, by: bool | int | str) -> np.ndarray | None:
    """Per sample, the bucket ``group_by_length=by`` groups by, as its rank among the
    boundaries: the smallest boundary that holds the sample's length in a variable-length
    input (True: the only one; a dict key or tuple position: that one). One byte per
    sample for up to 256 boundaries.

    Raises:
        ValueError: When there is no such input, or it is not variable-length.
    """
    if by is False or by is None:
        return None
    group = layout.inputs
    named = {(group.keys[k] if group.kind == "dict" else k): f for k, f in enumerate(group.fields)}
    variable = {key: f for key, f in named.items() if f.buckets is not None}
    if by is True:
        if len(variable) == 1:
            return _bucket_ranks(next(iter(variable.values())))
        if not variable:
            raise ValueError(
                "group_by_length=True groups by a variable-length input, but every input has "
                f"a fixed shape ({', '.join(f.name for f in group.fields)}). Give the text "
                "input bucket boundaries, e.g. TextTokens(texts, buckets=(16, 32, 64, 128)), "
                "or leave group_by_length=False."
            )
        raise ValueError(
            f"group_by_length=True is ambiguous: the inputs {sorted(map(str, variable))!r} "
            "all vary in length. Pass the one to group by: group_by_length="
            f"{next(iter(variable))!r}."
        )
    if by not in named:
        raise ValueError(
            f"group_by_length={by!r} names no input; the inputs are "
            f"{', '.join(map(repr, named))} (dict keys, or positions in the tuple)."
        )
    if by not in variable:
        raise ValueError(
            f"group_by_length={by!r}: {named[by].name} has a fixed shape, so there is no "
            "length to group by. Give it bucket boundaries (TextTokens(texts, buckets=...)) "
            "or group by a variable-length input."
        )
    return _bucket_ranks(variable[by])


def _bucket_ranks(field: Field) -> np.ndarray:
    """The rank of the bucket boundary each sample of a variable-length field is padded
    to at least (0 for the smallest)."""
    buckets = np.asarray(field.buckets)
    ranks = np.minimum(np.searchsorted(buckets, np.asarray(field.array.lengths)), len(buckets) - 1)
    return ranks.astype(np.min_scalar_type(len(buckets) - 1))
