"""`check_model(layout, model)`, behind ``ds.check(model)``: every way a dataset's batches
can miss a model, in one error.

The mistakes that fill the multi-input Keras questions each get a message that says what
to change: inputs passed as separate arguments (read as targets and weights), inputs in the
wrong order, floating "text" fed to an ``Embedding``, and dict keys that match no
``keras.Input`` name.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

    from multimodal_dataset.batching.layout import BatchLayout
    from multimodal_dataset.batching.structure import ArraySpec


@dataclass(frozen=True)
class ModelInput:
    """What the model says about one of its inputs."""

    name: str
    shape: tuple[int | None, ...]  # per sample, without the batch dimension
    dtype: str
    embedding_consumers: tuple[str, ...]

    @property
    def is_integer(self) -> bool:
        return np.dtype(self.dtype).kind in "iu"

    def describe(self) -> str:
        return f"'{self.name}' {_shape(self.shape)} {self.dtype}"


def check_model(layout: BatchLayout, model: keras.Model) -> None:
    """Raises one ValueError listing every mismatch between a dataset's batches (its
    `BatchLayout`) and ``model``."""
    model_inputs = _model_inputs(model)
    problems: list[str] = []
    group = layout.inputs
    specs = [field.spec for field in group.fields]
    struct = getattr(model, "_inputs_struct", None)
    if group.kind == "dict" and _is_nested(struct):
        # fit refuses a dict for a nested structure (a flat tuple in model.inputs's order
        # it accepts, with a warning: checked by position below).
        raise ValueError(
            f"Model '{model.name}' takes its inputs as a nested structure "
            f"({_describe_struct(struct)}), but the dataset gives a flat dict of arrays, "
            "which fit cannot match to it. Build the model on a flat dict keyed by input "
            "name, keras.Model({'a': a, 'b': b, 'c': c}, outputs), or on a flat list, "
            "keras.Model([a, b, c], outputs), and pass the dataset's inputs the same way."
        )
    if group.kind == "dict":
        problems += _match_by_name(specs, group.keys, model_inputs)
    else:
        problems += _match_by_position(layout, specs, model_inputs)
    problems += _check_targets(layout, model)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        expected = ", ".join(m.describe() for m in model_inputs)
        raise ValueError(
            f"The dataset does not fit model '{model.name}' "
            f"({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n{listing}\n"
            f"The model's inputs, in order: {expected}."
        )


def _model_inputs(model: keras.Model) -> list[ModelInput]:
    tensors = getattr(model, "inputs", None)
    if not tensors:
        raise ValueError(
            f"Model '{model.name}' has no known inputs, so the dataset cannot be checked "
            "against it. Build it with keras.Input layers (the functional API or a Sequential "
            "model starting with keras.Input), or call the model on a batch first."
        )
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        # model.inputs lists a dict's tensors sorted by key, not in insertion order.
        keys = {id(tensor): key for key, tensor in struct.items()}
        names = [str(keys.get(id(t), t.name)) for t in tensors]
    else:
        names = [t.name for t in tensors]
    consumers = _embedding_consumers(model)
    return [
        ModelInput(name, tuple(t.shape[1:]), str(t.dtype), consumers.get(id(t), ()))
        for name, t in zip(names, tensors, strict=True)
    ]


def _is_nested(struct: object) -> bool:
    """Whether a model's input structure holds a list, tuple or dict inside another."""
    if isinstance(struct, dict):
        values = list(struct.values())
    elif isinstance(struct, (list, tuple)):
        values = list(struct)
    else:
        return False
    return any(isinstance(v, (dict, list, tuple)) for v in values)


def _describe_struct(struct: object) -> str:
    if isinstance(struct, dict):
        return "{" + ", ".join(f"{k!r}: {_describe_struct(v)}" for k, v in struct.items()) + "}"
    if isinstance(struct, (list, tuple)):
        return "[" + ", ".join(_describe_struct(v) for v in struct) + "]"
    return str(getattr(struct, "name", "input"))


def _embedding_consumers(model: keras.Model) -> dict[int, tuple[str, ...]]:
    """Maps ``id(input tensor)`` to the names of Embedding layers that read it directly."""
    import keras

    found: dict[int, list[str]] = {}
    for layer in getattr(model, "layers", []):
        if not isinstance(layer, keras.layers.Embedding):
            continue
        for node in getattr(layer, "_inbound_nodes", []):
            for tensor in getattr(node, "input_tensors", []):
                found.setdefault(id(tensor), []).append(layer.name)
    return {key: tuple(names) for key, names in found.items()}


def _shape(shape: tuple[int | None, ...]) -> str:
    return (
        "("
        + ", ".join("None" if d is None else str(d) for d in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )


def _shape_fits(data: tuple[int | None, ...], model: tuple[int | None, ...]) -> bool:
    """Whether Keras accepts per-sample ``data`` shape for an input of ``model`` shape.

    Keras squeezes or adds a trailing dimension of size 1 when the ranks differ by one. A
    dimension that varies from batch to batch (None in ``data``) fits only None.
    """
    if len(data) == len(model) + 1 and data[-1:] == (1,):
        data = data[:-1]
    elif len(data) + 1 == len(model) and model[-1] in (1, None):
        model = model[:-1]
    return len(data) == len(model) and all(
        m is None or (d is not None and m == d) for d, m in zip(data, model, strict=False)
    )


def _compare(spec: ArraySpec, model_input: ModelInput) -> list[str]:
    problems = []
    data, model = spec.sample_shape, model_input.shape
    if len(data) == len(model) and any(
        d is None and m is not None for d, m in zip(data, model, strict=True)
    ):
        fixed = next(m for d, m in zip(data, model, strict=True) if d is None and m is not None)
        problems.append(
            f"{spec.name} is padded to a different length in each batch (a bucketed text, "
            f"per-sample shape {_shape(data)}), but model input '{model_input.name}' expects "
            f"the fixed {_shape(model)}. Declare keras.Input({_shape(data)}, "
            f"dtype='{spec.dtype}', name='{model_input.name}'), or give the text one length "
            f"(TextTokens(texts, length={fixed}), from_table(..., text_length={fixed}))."
        )
    elif not _shape_fits(data, model):
        problems.append(
            f"{spec.name} has per-sample shape {_shape(spec.sample_shape)} but model input "
            f"'{model_input.name}' expects {_shape(model_input.shape)}. Reshape the array to "
            f"(n, {', '.join(str(d) for d in model_input.shape)}) or change the keras.Input "
            "shape."
        )
    data_is_float = np.dtype(spec.dtype).kind == "f"
    if data_is_float and model_input.embedding_consumers:
        layers = ", ".join(f"'{name}'" for name in model_input.embedding_consumers)
        problems.append(
            f"{spec.name} holds floating values ({spec.dtype}) but model input "
            f"'{model_input.name}' feeds Embedding layer {layers}, which looks up integer "
            "token ids. Pass the ids as an integer array (e.g. `arr.astype('int32')`); "
            "the dataset then yields int32"
            + (
                "."
                if model_input.is_integer
                else f", and declare keras.Input(..., dtype='int32', name='{model_input.name}')."
            )
        )
    elif data_is_float and model_input.is_integer:
        problems.append(
            f"{spec.name} holds floating values ({spec.dtype}) but model input "
            f"'{model_input.name}' is {model_input.dtype}; Keras would truncate them silently. "
            "Pass an integer array (e.g. `arr.astype('int32')`) or declare the input as float."
        )
    return problems


def _match_by_name(
    specs: list[ArraySpec], keys: tuple[str, ...], model_inputs: list[ModelInput]
) -> list[str]:
    by_name = {m.name: m for m in model_inputs}
    problems = []
    for key, spec in zip(keys, specs, strict=True):
        if key in by_name:
            problems += _compare(spec, by_name[key])
            continue
        missing = [m.name for m in model_inputs if m.name not in keys]
        close = difflib.get_close_matches(key, missing or list(by_name), n=1)
        guess = f" Did you mean '{close[0]}'?" if close else ""
        problems.append(
            f"{spec.name} matches no keras.Input name (the model's inputs are named "
            f"{list(by_name)}).{guess} Rename the dict key, or name the input "
            f"keras.Input(..., name='{key}')."
        )
    for model_input in model_inputs:
        if model_input.name not in keys:
            problems.append(
                f"model input {model_input.describe()} has no entry in the inputs dict "
                f"(keys: {list(keys)}). Add inputs['{model_input.name}']."
            )
    return problems


def _match_by_position(
    layout: BatchLayout, specs: list[ArraySpec], model_inputs: list[ModelInput]
) -> list[str]:
    if len(specs) != len(model_inputs):
        return [_count_mismatch(layout, specs, model_inputs)]
    problems = [p for spec, m in zip(specs, model_inputs, strict=True) for p in _compare(spec, m)]
    if problems and len(specs) > 1:
        order = _fitting_order(specs, model_inputs)
        if order is not None:
            names = ", ".join(m.name for m in model_inputs)
            reordered = ", ".join(specs[i].name for i in order)
            as_dict = ", ".join(
                f"'{m.name}': {specs[i].name}" for m, i in zip(model_inputs, order, strict=True)
            )
            return [
                f"the inputs are in the wrong order: the model expects ({names}), and the "
                f"dataset's arrays fit them in the order ({reordered}). Pass "
                f"({reordered}), or a dict keyed by input name: {{{as_dict}}}."
            ]
    return problems


def _fitting_order(specs: list[ArraySpec], model_inputs: list[ModelInput]) -> list[int] | None:
    if len(specs) > 6:  # 720 permutations at most
        return None
    for order in itertools.permutations(range(len(specs))):
        if all(not _compare(specs[i], m) for i, m in zip(order, model_inputs, strict=True)):
            return list(order)
    return None


def _count_mismatch(
    layout: BatchLayout, specs: list[ArraySpec], model_inputs: list[ModelInput]
) -> str:
    got = ", ".join(f"{s.name} {_shape(s.sample_shape)}" for s in specs)
    message = (
        f"the model has {len(model_inputs)} input{'s' if len(model_inputs) > 1 else ''} "
        f"({', '.join(m.name for m in model_inputs)}) but the dataset yields {len(specs)} "
        f"({got})."
    )
    extra = [
        g.fields[0]
        for g in (layout.targets, layout.weights)
        if g is not None and g.kind == "single"
    ]
    if len(specs) == 1 and len(model_inputs) > 1 and extra:
        parts = ["x1"] + [f"x{i + 2}" for i in range(len(extra))]
        message += (
            f" It looks like the inputs were passed as separate arguments: "
            f"MultimodalDataset({', '.join(parts)}) reads the second argument as targets"
            + (" and the third as sample_weights" if len(extra) > 1 else "")
            + ", just as Keras reads a flat tuple (x1, x2, x3) as (x, y, sample_weight). "
            f"Pass the inputs as one tuple: MultimodalDataset(({', '.join(parts)}), "
            "targets=y), or as a dict keyed by input name."
        )
    elif len(specs) > 1 and len(model_inputs) == 1:
        message += " Pass a single array, or build the model with one keras.Input per array."
    else:
        message += (
            " Give one array per model input, in the model's order, or a dict keyed by input name."
        )
    return message


def _check_targets(layout: BatchLayout, model: keras.Model) -> list[str]:
    group = layout.targets
    outputs = getattr(model, "outputs", None)
    if group is None or not outputs:
        return []
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict):  # outputs given as a dict: fit matches targets by its keys
        names = [str(k) for k in struct]
    else:
        names = list(getattr(model, "output_names", None) or [t.name for t in outputs])
    if group.kind == "dict":
        unknown = [k for k in group.keys if k not in names]
        if unknown:
            return [
                f"targets keys {unknown} match no model output (outputs are named {names}). "
                "Key targets by output name (the name of the layer that produces it)."
            ]
        return []
    if len(group.fields) != len(outputs):
        return [
            f"the model has {len(outputs)} output{'s' if len(outputs) > 1 else ''} ({names}) "
            f"but the dataset has {len(group.fields)} target array"
            f"{'s' if len(group.fields) > 1 else ''}. Give one target per output, as a tuple "
            "in output order or a dict keyed by output name."
        ]
    return []
