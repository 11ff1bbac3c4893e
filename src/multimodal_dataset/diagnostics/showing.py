"""`draw_batch`: a grid of samples as the model receives them (``ds.show_batch()``).

Each cell shows one sample: its image (after resizing and augmentation), its text decoded
back from the token ids (unknown words as ``[UNK]``, padding counted as ``[PAD]*n``), its
numbers (standardised, with the original value where the preprocessing knows the
statistics) and its label (the class name where known). Drawn with matplotlib's
object-oriented API, never ``pyplot``: no window, no global state, works headless.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset.sources.protocol import Categorized, Decodable, Standardized

if TYPE_CHECKING:
    from multimodal_dataset.batching.layout import BatchLayout
    from multimodal_dataset.batching.sampler import BatchPlan
    from multimodal_dataset.batching.structure import Field
    from multimodal_dataset.engine.producer import ProducedBatch

#: Characters per line of a caption under an image, and lines kept.
_WRAP, _LINES = 34, 4


def show_batch(
    produce: Callable[[BatchPlan], ProducedBatch],
    plans: Iterable[BatchPlan],
    n: int,
    layout: BatchLayout,
    class_names: Sequence[Sequence[Any] | None],
    path: str | os.PathLike[str] | None,
) -> Any:
    """Draws the first ``n`` samples of ``plans`` (an epoch's batches, in order) as the
    model receives them (`MultimodalDataset.show_batch`)."""
    parts: list[tuple[np.ndarray, list[np.ndarray]]] = []
    taken = 0
    for plan in plans:
        if taken >= n:
            break
        parts.append((plan.indices, produce(plan).arrays))
        taken += len(plan.indices)
    indices = np.concatenate([p[0] for p in parts])[:n]
    arrays = [joined([p[1][k] for p in parts])[:n] for k in range(len(parts[0][1]))]
    return draw_batch(
        layout.fields,
        arrays,
        indices,
        num_inputs=len(layout.inputs.fields),
        num_targets=len(layout.targets.fields) if layout.targets is not None else 0,
        class_names=class_names,
        path=path,
    )


def draw_batch(
    fields: Sequence[Field],
    arrays: Sequence[np.ndarray],
    indices: np.ndarray,
    *,
    num_inputs: int,
    num_targets: int | None = None,
    class_names: Sequence[Sequence[Any] | None] = (),
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Draws ``indices``' samples in a grid and returns the matplotlib ``Figure``.

    Args:
        fields: The dataset's fields (inputs first, then targets and weights).
        arrays: One gathered array per field, rows in the order of ``indices``.
        indices: The samples' indices in the dataset.
        num_inputs: How many of ``fields`` are inputs (the rest: targets, weights).
        num_targets: How many fields after the inputs are targets (None: one, if any).
        class_names: For each target, the names of its class ids (or of a multi-hot
            row's positions), or None.
        path: Where to write the figure as a PNG, or None.
    """
    figure_module = optional_import("matplotlib.figure", "ds.show_batch()")
    count = len(indices)
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    images = [k for k in range(num_inputs) if _is_image(arrays[k])]
    height = 3.6 if images else 1.9
    figure = figure_module.Figure(figsize=(3.2 * columns, height * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    if num_targets is None:
        num_targets = 1 if len(fields) > num_inputs else 0
    targets = range(num_inputs, num_inputs + num_targets)
    names = [class_names[t] if t < len(class_names) else None for t in range(num_targets)]
    for cell, axis in enumerate(axes):
        axis.set_xticks([])
        axis.set_yticks([])
        if cell >= count:
            axis.set_axis_off()
            continue
        lines = []
        for k in range(num_inputs):
            if k in images[:1]:
                axis.imshow(_displayable(arrays[k][cell], fields[k]), interpolation="nearest")
            elif k in images:
                lines.append(f"{_short(fields[k].name)}: an image (the first is drawn)")
            else:
                lines.append(_describe(fields[k], arrays[k][cell]))
        title = f"sample {int(indices[cell])}"
        for t, k in enumerate(targets):
            label = _label(arrays[k][cell], names[t])
            title += f" · {_short(fields[k].name) if num_targets > 1 else 'label'} {label}"
        axis.set_title(title, fontsize=9)
        text = "\n".join(lines)
        if images:
            axis.set_xlabel(text, fontsize=7, loc="left", family="monospace")
        else:
            axis.text(0.02, 0.95, text, fontsize=7, va="top", family="monospace")
            for spine in axis.spines.values():
                spine.set_visible(False)
    legend = "as the model receives them"
    if any(isinstance(f.array, Decodable) for f in fields[:num_inputs]):
        legend += "; text decoded from its ids ([UNK]: unknown word, [PAD]*n: padding)"
    if any(_standardizer(f) is not None for f in fields[:num_inputs]):
        legend += "; numbers standardised (original value)"
    if not num_targets:
        legend = "inputs only (an inference dataset has no labels), " + legend
    figure.suptitle(f"{count} samples {legend}", fontsize=9)
    if path is not None:
        figure.savefig(os.fspath(path), format="png", dpi=100)
    return figure


def joined(arrays: list[np.ndarray]) -> np.ndarray:
    """Batches joined along the samples; texts padded per batch are padded to the widest."""
    width = max(a.shape[-1] for a in arrays) if arrays[0].ndim == 2 else None
    if width is not None and any(a.shape[-1] != width for a in arrays):
        arrays = [np.pad(a, ((0, 0), (0, width - a.shape[-1]))) for a in arrays]
    return np.concatenate(arrays)


def _is_image(array: np.ndarray) -> bool:
    """A batch of ``(height, width, channels)`` samples with 1, 3 or 4 channels."""
    return array.ndim == 4 and array.shape[-1] in (1, 3, 4)


def _displayable(image: np.ndarray, field: Field | None = None) -> np.ndarray:
    """What ``imshow`` draws as the model sees it: uint8 and ``[0, 1]`` floats as they
    are; a source's declared ``value_range`` (``(0, 255)``, ``(-1, 1)``) mapped back to
    ``[0, 1]``; other floats (a user's standardised arrays) stretched to their range."""
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.dtype == np.uint8:
        return image
    values = image.astype(np.float32)
    declared = getattr(field.array, "value_range", None) if field is not None else None
    if declared is not None:
        low, high = (float(v) for v in declared)
        shown: np.ndarray = np.clip((values - low) / (high - low), 0.0, 1.0)
        return shown
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
        return values
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _describe(field: Field, value: np.ndarray) -> str:
    """A text input decoded, numbers with their names and original values, else values."""
    if isinstance(field.array, Decodable):
        return "\n".join(textwrap.wrap(field.array.decode(value), _WRAP)[:_LINES])
    if isinstance(field.array, Categorized):
        category = int(np.asarray(value).reshape(-1)[0])
        return f"{_short(field.name)}: {field.array.category_name(category)} ({category})"
    standardizer = _standardizer(field)
    flat = np.asarray(value).reshape(-1)
    if standardizer is not None and len(standardizer.columns) == len(flat):
        return "\n".join(
            f"{name[:12]}: {z:+.2f} ({z * std + mean:.4g})"
            for name, z, mean, std in zip(
                standardizer.columns, flat, standardizer.mean, standardizer.std, strict=True
            )
        )
    shown = " ".join(f"{v:.3g}" if flat.dtype.kind == "f" else str(v) for v in flat[:8])
    more = " ..." if len(flat) > 8 else ""
    return "\n".join(textwrap.wrap(f"{field.name}: {shown}{more}", _WRAP)[:_LINES])


def _standardizer(field: Field) -> Any:
    return field.array.standardizer if isinstance(field.array, Standardized) else None


def _short(name: str) -> str:
    """A field's name without its role: ``inputs['sex']`` -> ``sex``."""
    for role in ("inputs", "targets"):
        if name.startswith(f"{role}[") and name.endswith("]"):
            inner = name[len(role) + 1 : -1]
            return inner.strip("'\"")
    return name


def _label(value: np.ndarray, class_names: Sequence[Any] | None) -> str:
    """A class id with its name, a one-hot row as its class, a multi-hot row as the
    names of its classes, or the regression value."""
    flat = np.asarray(value).reshape(-1)
    names = list(class_names) if class_names is not None else None
    multi_hot = names is not None and flat.size == len(names) > 1
    if names is not None and multi_hot and np.isin(flat, (0, 1)).all() and flat.sum() != 1:
        shown = [str(names[int(i)]) for i in np.flatnonzero(flat)]
        return "{" + ", ".join(shown[:4]) + (", ..." if len(shown) > 4 else "") + "}"
    if flat.size > 1:  # one-hot or several outputs
        if np.isin(flat, (0, 1)).all() and flat.sum() == 1:
            flat = np.array([int(flat.argmax())])
        else:
            return " ".join(f"{v:.3g}" for v in flat[:4]) + (" ..." if flat.size > 4 else "")
    label = flat[0]
    if flat.dtype.kind in "iu" or (float(label).is_integer() and class_names is not None):
        label = int(label)
        if class_names is not None and 0 <= label < len(class_names):
            return f"{class_names[label]} ({label})"
        return str(label)
    return f"{float(label):.4g}"
