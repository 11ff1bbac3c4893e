"""The structure rules: how user arrays become the batches Keras expects.

Keras reads what a `PyDataset` returns by position and container type:

- a top-level tuple is ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, so a flat
  ``(x1, x2, x3)`` of three inputs is silently read as inputs, targets and weights;
- a top-level dict is read as inputs only;
- on TensorFlow a nested *list* such as ``([x1, x2], y)`` is rejected, and the output
  signature is inferred from the first batches, so every batch must keep the same
  structure, dtypes and per-sample shapes.

This module turns the user's inputs, targets and sample weights into named *fields* (one
per array), applies the dtype policy, and packs gathered arrays back into exactly one of
the batch structures above: multiple arrays become a tuple or a dict, never a list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from multimodal_dataset.sources.arrays import ArraySource, as_array
from multimodal_dataset.sources.protocol import GatherContext, Source, bucket_boundaries

Kind = Literal["single", "tuple", "dict"]


@dataclass(frozen=True)
class ArraySpec:
    """Shape and dtype of one array in every batch, known without reading data.

    Attributes:
        shape: The batch shape; the first entry is ``None`` (the batch dimension).
        dtype: The dtype name every batch of this array has, e.g. ``"float32"``.
        name: Where the array came from, e.g. ``"inputs[0]"`` or ``"inputs['text']"``.
    """

    shape: tuple[int | None, ...]
    dtype: str
    name: str

    @property
    def sample_shape(self) -> tuple[int | None, ...]:
        """The per-sample shape (the batch shape without its first dimension); None where
        it varies from batch to batch (a bucketed text's padded length)."""
        return tuple(None if d is None else int(d) for d in self.shape[1:])

    def __repr__(self) -> str:
        return f"ArraySpec(shape={self.shape}, dtype={self.dtype!r}, name={self.name!r})"


@dataclass(frozen=True)
class Field:
    """One input, target or weight array of every batch: a `Source` and its name.

    Attributes:
        name: Where the array came from, used in every message about it.
        array: The source batches are gathered from: the user's own `Source`, or an
            `ArraySource` over the user's array or memory map (never copied).
    """

    name: str
    array: Source
    #: Whether gathered batches are checked against the declared shape and dtype (a
    #: user's source; an `ArraySource` casts to its dtype itself). Set once, at
    #: construction: the check is on the hot path.
    checked: bool = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checked", not isinstance(self.array, ArraySource))

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of every batch of this field."""
        return self.array.dtype

    @property
    def in_memory(self) -> bool:
        """Whether the field is an array (in memory or memory-mapped) rather than a source
        that reads or decodes."""
        return not self.checked

    @property
    def buckets(self) -> tuple[int, ...] | None:
        """The lengths a variable-length source's last dimension is padded to, when there
        is more than one (one boundary is a fixed shape)."""
        return bucket_boundaries(self.array)

    @property
    def spec(self) -> ArraySpec:
        shape: tuple[int | None, ...] = (None, *self.array.shape[1:])
        if self.buckets is not None:
            shape = (*shape[:-1], None)  # the padded length varies from batch to batch
        return ArraySpec(shape, self.dtype.name, self.name)

    def gather(self, indices: np.ndarray, context: GatherContext) -> np.ndarray:
        """Gathers the samples ``indices`` (in that order) as one array.

        Args:
            indices: The sample indices of the batch, in batch order.
            context: The field name, seed and epoch; collects what the source reports.

        Raises:
            TypeError: When a source returns another shape or dtype than it declares.
        """
        batch: np.ndarray = self.array.gather(indices, context)
        if self.checked:
            expected = tuple(self.array.shape[1:])
            if context.width is not None:
                expected = (*expected[:-1], context.width)
            if batch.dtype != self.dtype or batch.shape[1:] != expected:
                raise TypeError(
                    f"{self.name}: {type(self.array).__name__}.gather returned "
                    f"{batch.shape[1:]} {batch.dtype} per sample, but the source declares "
                    f"{expected} {self.dtype}. A source must return exactly "
                    "its declared shape and dtype."
                )
        return batch


@dataclass(frozen=True)
class Group:
    """A structure of fields: one array, a tuple of arrays, or a dict of arrays.

    Attributes:
        kind: ``"single"``, ``"tuple"`` or ``"dict"``.
        fields: The fields in order (dict insertion order for dicts).
        keys: The dict keys, for ``kind == "dict"``.
    """

    kind: Kind
    fields: tuple[Field, ...]
    keys: tuple[str, ...] = ()

    def pack(self, arrays: Sequence[Any]) -> Any:
        """Packs one value per field into this group's structure (tuple, dict or single)."""
        if self.kind == "single":
            return arrays[0]
        if self.kind == "dict":
            return dict(zip(self.keys, arrays, strict=True))
        return tuple(arrays)

    @property
    def spec(self) -> Any:
        return self.pack([f.spec for f in self.fields])


def is_floating(dtype: np.dtype[Any]) -> bool:
    """numpy floats, and the ``ml_dtypes`` floats (bfloat16, float8) that JAX, TensorFlow and
    Keras use, whose numpy kind is ``"V"``."""
    return dtype.kind == "f" or (
        dtype.kind == "V" and dtype.name.startswith(("bfloat16", "float8", "float4", "float6"))
    )


def output_dtype(dtype: np.dtype[Any], name: str, floatx: str) -> tuple[np.dtype[Any], bool, bool]:
    """Applies the dtype policy to one array's dtype.

    Floating (bfloat16 included) and bool arrays come out as ``floatx``; integer arrays
    (token ids, class labels) as ``int32``. Anything else is rejected.

    Args:
        dtype: The array's dtype.
        name: The array's name, for the error message.
        floatx: Keras's float type, ``keras.config.floatx()``.

    Returns:
        The output dtype, whether gathered values must be range-checked for int32, and
        whether the cast can overflow to inf (a float wider than ``floatx``).

    Raises:
        TypeError: For object, string, complex, datetime and structured dtypes.
    """
    if dtype.kind == "b":
        return np.dtype(floatx), False, False
    if is_floating(dtype):
        out = np.dtype(floatx)
        narrows = dtype.kind == "f" and np.finfo(dtype).max > np.finfo(out).max
        return out, False, narrows
    if dtype.kind in "iu":
        fits = np.can_cast(dtype, np.int32, casting="safe")
        return np.dtype(np.int32), not fits, False
    hint = (
        "Tokenize text into integer ids first (e.g. with keras.layers.TextVectorization "
        "or a tokenizer), and encode categories as integers."
        if dtype.kind in "OUS"
        else "Convert it to a real floating or integer array."
    )
    raise TypeError(
        f"{name} has dtype {dtype}, which Keras models cannot consume. Supported dtypes are "
        f"floating, bfloat16 included (fed as {floatx}), integer (fed as int32) and bool (fed "
        f"as {floatx}). {hint}"
    )


def _check_source(source: Source, name: str) -> None:
    shape = source.shape
    if len(shape) < 1 or any(not isinstance(d, (int, np.integer)) or d < 0 for d in shape):
        raise ValueError(
            f"{name}: {type(source).__name__}.shape must be (num_samples, *sample_shape) "
            f"with non-negative integers; got {shape!r}."
        )


def make_field(value: Any, name: str, floatx: str) -> Field:
    """The field of one user value: a `Source` as it is, an array as an `ArraySource`
    casting to the dtype policy's dtype."""
    if isinstance(value, Source):
        _check_source(value, name)
        return Field(name, value)
    array = as_array(value, name)
    dtype, check_int32, check_overflow = output_dtype(array.dtype, name, floatx)
    return Field(name, ArraySource(array, name, dtype, check_int32, check_overflow))


def make_group(value: Any, role: str, floatx: str) -> Group:
    """Normalises a user structure (array, tuple/list or dict of arrays) into a Group.

    Args:
        value: The user's inputs, targets or sample weights.
        role: ``"inputs"``, ``"targets"`` or ``"sample_weights"``, used in names.
        floatx: Keras's float type.

    Raises:
        TypeError, ValueError: For empty or nested structures and non-array leaves.
    """
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"{role} is an empty dict; give at least one array.")
        keys = tuple(value)
        bad = [k for k in keys if not isinstance(k, str)]
        if bad:
            raise TypeError(
                f"{role} dict keys must be strings (the names of the model's keras.Input "
                f"layers); got {bad!r}."
            )
        fields = tuple(
            make_field(_leaf(value[k], f"{role}[{k!r}]"), f"{role}[{k!r}]", floatx) for k in keys
        )
        return Group("dict", fields, keys)
    if isinstance(value, tuple) or (isinstance(value, list) and not _is_numeric_sequence(value)):
        if not value:
            raise ValueError(f"{role} is an empty {type(value).__name__}; give at least one array.")
        fields = tuple(
            make_field(_leaf(v, f"{role}[{i}]"), f"{role}[{i}]", floatx)
            for i, v in enumerate(value)
        )
        return Group("tuple", fields)
    return Group("single", (make_field(value, role, floatx),))


def _leaf(value: Any, name: str) -> Any:
    if isinstance(value, (Mapping, tuple)) or (
        isinstance(value, list) and value and not _is_numeric_sequence(value)
    ):
        raise TypeError(
            f"{name} is a nested {type(value).__name__}; MultimodalDataset takes one level "
            "of structure: an array, a tuple of arrays or a dict of arrays. Flatten the "
            "structure (e.g. one dict entry per model input)."
        )
    return value


def _is_numeric_sequence(value: Sequence[Any]) -> bool:
    """True for plain Python data such as ``[1, 2, 3]`` or ``[[1, 2], [3, 4]]``."""
    first = value[0] if len(value) else None
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    return isinstance(first, (int, float, bool, np.number, np.bool_)) and not isinstance(
        first, np.ndarray
    )
