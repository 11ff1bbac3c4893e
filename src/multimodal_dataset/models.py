"""The reference three-input model: an image CNN, a token-id Embedding and a dense branch."""

from __future__ import annotations

import keras


def build_reference_model(
    *,
    image_shape: tuple[int, int, int] = (32, 32, 3),
    text_length: int | None = 20,
    vocab_size: int = 1000,
    numeric_features: int = 5,
    num_classes: int = 2,
    learning_rate: float = 3e-3,
    seed: int = 0,
) -> keras.Model:
    """Builds and compiles a model with inputs named ``image``, ``text`` and ``numeric``.

    Only Keras layers are used, so the same model runs on TensorFlow, JAX and PyTorch.

    Args:
        image_shape: Per-sample shape of the float image input.
        text_length: Length of the int32 token-id input; None for texts padded to a
            different length in each batch (``TextTokens(buckets=...)``): the embedding then
            masks the padding (id 0) and the pooling averages only the real tokens.
        vocab_size: Number of token ids the Embedding knows (0 is padding).
        numeric_features: Width of the float numeric input.
        num_classes: Number of classes of the softmax output (sparse integer labels).
        learning_rate: Adam's learning rate.
        seed: Seed of the weight initialisers, so that builds are reproducible.

    Returns:
        A compiled ``keras.Model`` with ``sparse_categorical_crossentropy`` and accuracy.
    """
    init = keras.initializers.GlorotUniform(seed=seed)
    image = keras.Input(image_shape, name="image")
    text = keras.Input((text_length,), dtype="int32", name="text")  # (None,): any length
    numeric = keras.Input((numeric_features,), name="numeric")

    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", kernel_initializer=init)(image)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu", kernel_initializer=init)(x)
    image_features = keras.layers.GlobalAveragePooling2D(name="image_pool")(x)

    t = keras.layers.Embedding(
        vocab_size,
        16,
        embeddings_initializer=init,
        mask_zero=text_length is None,  # variable length: padding must not count
        name="embedding",
    )(text)
    text_features = keras.layers.GlobalAveragePooling1D(name="text_pool")(t)  # honours a mask

    numeric_features_ = keras.layers.Dense(16, activation="relu", kernel_initializer=init)(numeric)

    merged = keras.layers.Concatenate()([image_features, text_features, numeric_features_])
    merged = keras.layers.Dense(32, activation="relu", kernel_initializer=init)(merged)
    output = keras.layers.Dense(
        num_classes, activation="softmax", kernel_initializer=init, name="label"
    )(merged)
    # A list of inputs (not a dict) accepts both tuple batches in this order and dict
    # batches keyed by the input names.
    model = keras.Model([image, text, numeric], output, name="multimodal_reference")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
