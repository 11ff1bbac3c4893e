"""Reproduces why TensorFlow trains the reference model to different losses than JAX and
PyTorch from the same data and weights: Adam on an Embedding whose batch repeats a token.

Run it under each backend: ``KERAS_BACKEND=tensorflow python portability/embedding_adam.py``.
It prints embedding row 1 after two Adam steps; JAX and PyTorch print
``[-0.72668, -1.16199]``, TensorFlow ``[-0.60725, -1.27565]``.
"""

from __future__ import annotations

import keras
import numpy as np

tokens = keras.Input((4,), dtype="int32")
pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(6, 2)(tokens))
model = keras.Model(tokens, keras.layers.Dense(1)(pooled))
rng = np.random.default_rng(0)
model.set_weights([rng.uniform(-1, 1, w.shape).astype("float32") for w in model.get_weights()])
model.compile(keras.optimizers.Adam(0.1), "mse")
model.train_on_batch(np.array([[1, 1, 2, 1]]), np.array([[1.0]]))  # token 1 three times
model.train_on_batch(np.array([[3, 1, 3, 4]]), np.array([[1.0]]))
row = model.get_weights()[0][1]
print(f"{keras.backend.backend()}: embedding row 1 = {np.round(row, 5).tolist()}")
