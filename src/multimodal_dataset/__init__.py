"""Feed multi-input Keras 3 models, identically on TensorFlow, JAX and PyTorch.

```python
from multimodal_dataset import MultimodalDataset, from_table

ds = MultimodalDataset((images, token_ids, numbers), labels, batch_size=64, seed=0)
ds.check(model)
model.fit(ds, epochs=5)

train, val = from_table("manifest.csv", image="image", text="caption",
                        numeric=["price"], target="label",
                        image_size=(64, 64), text_length=20)
```
"""

from typing import TYPE_CHECKING

from multimodal_dataset._utils.lazy import exports

if TYPE_CHECKING:
    from multimodal_dataset import models, synthetic, testing
    from multimodal_dataset.batching.layout import BatchLayout
    from multimodal_dataset.batching.structure import ArraySpec
    from multimodal_dataset.dataset import MultimodalDataset
    from multimodal_dataset.engine.gathering import WorkerError
    from multimodal_dataset.engine.keras_loop import PartialEpochWarning
    from multimodal_dataset.example import make_example
    from multimodal_dataset.io.storage_errors import (
        CredentialsError,
        MissingBucketError,
        RetriesExhaustedError,
        StorageError,
    )
    from multimodal_dataset.sources import (
        CacheError,
        CacheWarning,
        CategoricalColumn,
        CategoryLookup,
        CategoryOverflowWarning,
        GatherContext,
        ImageBytes,
        ImageFiles,
        NumericColumns,
        ReplacedSamplesWarning,
        Replacement,
        SampleError,
        Source,
        Standardizer,
        TextTokens,
        TruncatedTextWarning,
        Vocabulary,
    )
    from multimodal_dataset.sources.images.augmentation import ImageAugmentation
    from multimodal_dataset.tables import (
        TableDataset,
        TablePreprocessing,
        from_table,
        from_webdataset,
    )

__all__ = [
    "ArraySpec",
    "BatchLayout",
    "CacheError",
    "CacheWarning",
    "CategoricalColumn",
    "CategoryLookup",
    "CategoryOverflowWarning",
    "CredentialsError",
    "GatherContext",
    "ImageAugmentation",
    "ImageBytes",
    "ImageFiles",
    "MissingBucketError",
    "MultimodalDataset",
    "NumericColumns",
    "PartialEpochWarning",
    "ReplacedSamplesWarning",
    "Replacement",
    "RetriesExhaustedError",
    "SampleError",
    "Source",
    "Standardizer",
    "StorageError",
    "TableDataset",
    "TablePreprocessing",
    "TextTokens",
    "TruncatedTextWarning",
    "Vocabulary",
    "WorkerError",
    "from_table",
    "from_webdataset",
    "make_example",
    "models",
    "synthetic",
    "testing",
]
__version__ = "0.1.0"

# Imported on first use: see multimodal_dataset._utils.lazy.
__getattr__, __dir__ = exports(
    __name__,
    {
        "ArraySpec": "multimodal_dataset.batching.structure",
        "BatchLayout": "multimodal_dataset.batching.layout",
        "CacheError": "multimodal_dataset.sources",
        "CacheWarning": "multimodal_dataset.sources",
        "CategoricalColumn": "multimodal_dataset.sources",
        "CategoryLookup": "multimodal_dataset.sources",
        "CategoryOverflowWarning": "multimodal_dataset.sources",
        "CredentialsError": "multimodal_dataset.io.storage_errors",
        "GatherContext": "multimodal_dataset.sources",
        "ImageAugmentation": "multimodal_dataset.sources.images.augmentation",
        "ImageBytes": "multimodal_dataset.sources",
        "ImageFiles": "multimodal_dataset.sources",
        "MissingBucketError": "multimodal_dataset.io.storage_errors",
        "MultimodalDataset": "multimodal_dataset.dataset",
        "NumericColumns": "multimodal_dataset.sources",
        "PartialEpochWarning": "multimodal_dataset.engine.keras_loop",
        "ReplacedSamplesWarning": "multimodal_dataset.sources",
        "Replacement": "multimodal_dataset.sources",
        "RetriesExhaustedError": "multimodal_dataset.io.storage_errors",
        "SampleError": "multimodal_dataset.sources",
        "Source": "multimodal_dataset.sources",
        "Standardizer": "multimodal_dataset.sources",
        "StorageError": "multimodal_dataset.io.storage_errors",
        "TableDataset": "multimodal_dataset.tables",
        "TablePreprocessing": "multimodal_dataset.tables",
        "TextTokens": "multimodal_dataset.sources",
        "TruncatedTextWarning": "multimodal_dataset.sources",
        "Vocabulary": "multimodal_dataset.sources",
        "WorkerError": "multimodal_dataset.engine.gathering",
        "from_table": "multimodal_dataset.tables",
        "from_webdataset": "multimodal_dataset.tables",
        "make_example": "multimodal_dataset.example",
        "models": "multimodal_dataset.models",
        "synthetic": "multimodal_dataset.synthetic",
        "testing": "multimodal_dataset.testing",
    },
)
