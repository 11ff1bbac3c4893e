"""Arrays as the dataset reads them: numpy arrays, memory-mapped ``.npy`` files, framework
tensors and pandas objects, converted once without copying what need not be copied.

A memory map pickles as its path (worker processes reopen the file instead of receiving its
contents); pandas objects come through ``to_numpy`` with missing values of nullable dtypes
refused; ragged data is named with the fix instead of numpy's raw message. `ArraySource`
is such an array as a `Source`, so that the dataset gathers every input one way.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from multimodal_dataset.io.shared import shareable
from multimodal_dataset.sources.protocol import GatherContext, Source

_INT32 = np.iinfo(np.int32)


def _open_npy(path: str | os.PathLike[str], name: str) -> np.ndarray:
    """Memory-maps a ``.npy`` file read-only: batches read only the samples they need."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{name}: no such .npy file: {os.fspath(path)!r} (relative to the working "
            f"directory {os.getcwd()!r}). Pass an existing path or an array."
        ) from None
    except ValueError as error:
        raise ValueError(
            f"{name}: {os.fspath(path)!r} is not a .npy file that can be memory-mapped "
            f"({error}). Save the array with np.save; object arrays cannot be mapped."
        ) from error


def as_array(value: Any, name: str) -> Any:
    """Returns an indexable array without copying numpy arrays and memory maps."""
    if isinstance(value, (str, os.PathLike)):
        if not os.fspath(value).endswith(".npy"):
            raise TypeError(
                f"{name} is the path {os.fspath(value)!r}; only .npy files can be given by "
                "path (they are memory-mapped). For image files use "
                "multimodal_dataset.ImageFiles, for text multimodal_dataset.TextTokens."
            )
        value = _open_npy(value, name)
    kinds = class_names(value)
    if kinds & {"pandas.DataFrame", "pandas.Series", "pandas.Index"}:
        value = _from_pandas(value, name)
    elif any(k.endswith(".RaggedTensor") for k in kinds):
        raise TypeError(
            f"{name} is a tf.RaggedTensor (rows of different lengths); every sample of an "
            "input must have the same shape. Pad it to a dense tensor (`x.to_tensor()`, or "
            "keras.utils.pad_sequences), or pass the raw texts to multimodal_dataset.TextTokens."
        )
    if isinstance(value, np.ndarray):
        array: Any = value
    elif hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "__getitem__"):
        # Framework tensors (tf, torch, jax) and array-likes: one conversion to numpy.
        try:
            array = np.asarray(value)
        except Exception as error:
            raise TypeError(
                f"{name} of type {type(value).__name__} could not be converted to a numpy "
                f"array ({error}). Pass a numpy array."
            ) from error
    elif isinstance(value, (list, tuple)) or np.isscalar(value):
        try:
            array = np.asarray(value)
        except ValueError as error:
            raise ValueError(
                f"{name} is a list whose samples have different lengths or shapes (a ragged "
                f"list; numpy says: {error}). Every sample of an input must have the same "
                "shape: pad the sequences (keras.utils.pad_sequences), or pass raw texts to "
                "multimodal_dataset.TextTokens."
            ) from None
    else:
        raise TypeError(
            f"{name} must be an array (numpy, or anything numpy can convert); "
            f"got {type(value).__name__}."
        )
    if array.ndim == 0:
        raise ValueError(
            f"{name} is a 0-d array (a single scalar, shape ()); every array needs a first "
            "dimension of samples. If it is one sample, wrap it: `np.asarray([value])`."
        )
    return array


def class_names(value: Any) -> set[str]:
    """``"module.Class"`` for every class in ``value``'s MRO (top-level module only), so
    that frameworks are recognised without importing them."""
    return {f"{c.__module__.split('.')[0]}.{c.__name__}" for c in type(value).__mro__}


def _from_pandas(value: Any, name: str) -> np.ndarray:
    """A pandas Series, Index or DataFrame as a numpy array; refuses missing values of
    nullable dtypes (``<NA>``), which numpy would turn into NaN floats or objects."""
    frame = value.to_frame() if value.ndim == 1 else value
    missing = frame.isna().to_numpy()
    nullable = [hasattr(dtype, "numpy_dtype") for dtype in frame.dtypes]
    for column, is_nullable in enumerate(nullable):
        if is_nullable and missing[:, column].any():
            sample = int(np.flatnonzero(missing[:, column])[0])
            label = f" (column {frame.columns[column]!r})" if value.ndim == 2 else ""
            raise ValueError(
                f"{name}{label} has missing values (<NA>), the first at sample {sample}; a "
                f"{frame.dtypes.iloc[column]} column would reach the model as NaN floats. "
                "Fill them (`.fillna(...)`) or drop those rows first."
            )
    if all(nullable):
        dtypes = {frame.dtypes.iloc[c].numpy_dtype for c in range(frame.shape[1])}
        if len(dtypes) == 1:
            return value.to_numpy(dtype=dtypes.pop())  # type: ignore[no-any-return]
    return value.to_numpy()  # type: ignore[no-any-return]


class ArraySource(Source):
    """A user's array (numpy, memory map, converted tensor) as a source: a batch is one
    vectorized index ``array[indices]``, cast to the dtype the dataset feeds.

    Integer values outside ``int32`` and floats that would become infinite in a narrower
    float type are errors naming the sample, never wrapped or cast silently. A file-backed
    memory map pickles as its path (worker processes map the file again).

    Args:
        array: The array, never copied.
        name: The dataset field it feeds (``inputs[0]``), named in errors.
        dtype: The dtype every batch is cast to.
        check_int32_range: Whether gathered values must be checked to fit in ``int32``.
        check_overflow: Whether casting to ``dtype`` must be checked for finite values
            that become infinite.
    """

    work = "indexing the array"
    reads_context = False

    def __init__(
        self,
        array: Any,
        name: str,
        dtype: np.dtype[Any],
        check_int32_range: bool = False,
        check_overflow: bool = False,
    ) -> None:
        self.array = array
        self.name = name
        self._dtype = np.dtype(dtype)
        self.check_int32_range = check_int32_range
        self.check_overflow = check_overflow

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    def gather(self, indices: np.ndarray, context: GatherContext) -> np.ndarray:
        batch = np.asarray(self.array[indices])
        if self.check_int32_range and batch.size:
            low, high = batch.min(), batch.max()
            if low < _INT32.min or high > _INT32.max:
                self._raise_outside_int32(batch, indices, low, high)
        if batch.dtype == self._dtype:
            return batch
        if not self.check_overflow:
            return batch.astype(self._dtype)
        with np.errstate(over="ignore"):
            cast = batch.astype(self._dtype)
        if cast.size and not np.isfinite(cast).all():
            self._raise_overflow(batch, cast, indices)
        return cast

    def _raise_outside_int32(
        self, batch: np.ndarray, indices: np.ndarray, low: Any, high: Any
    ) -> None:
        outside = (batch < _INT32.min) | (batch > _INT32.max)
        row = int(np.flatnonzero(outside.reshape(len(indices), -1).any(axis=1))[0])
        raise ValueError(
            f"{self.name} has value(s) outside the int32 range "
            f"[{_INT32.min}, {_INT32.max}] (sample {int(indices[row])}, batch min {low}, "
            f"max {high}). Integer inputs are fed as int32 token ids and are never "
            "wrapped silently. If these are real numbers rather than ids, convert "
            "the array to float first (e.g. `arr.astype('float32')`)."
        )

    def _raise_overflow(self, batch: np.ndarray, cast: np.ndarray, indices: np.ndarray) -> None:
        overflow = np.isinf(cast) & np.isfinite(batch)
        if not overflow.any():
            return  # infinities and NaNs that were in the data are the user's values
        row = int(np.flatnonzero(overflow.reshape(len(indices), -1).any(axis=1))[0])
        value = batch.reshape(len(indices), -1)[row][overflow.reshape(len(indices), -1)[row]][0]
        limit = float(np.finfo(self._dtype).max)
        wider = (
            " or feed a wider float type (keras.config.set_floatx('float32') before building "
            "the dataset)"
            if self._dtype.itemsize < 4
            else ""
        )
        raise ValueError(
            f"{self.name}: sample {int(indices[row])} holds {float(value):g}, which is beyond "
            f"the range of {self._dtype} (largest {limit:.4g}) and would become inf when fed "
            f"as {self._dtype}. Values are never turned into inf silently. Rescale the input "
            f"(e.g. standardise it, or take a logarithm){wider}."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling an np.memmap copies its whole contents; send the file's path instead,
        # and a large in-memory array as a temporary file's (written once).
        array = shareable(self, "array", self.array)
        return (
            ArraySource,
            (array, self.name, self._dtype, self.check_int32_range, self.check_overflow),
        )

    def __repr__(self) -> str:
        return f"ArraySource({self.name}: {self.shape} {self.array.dtype} -> {self._dtype})"
