"""Sources: per-sample data that the dataset reads, decodes or computes a batch at a time.

`protocol` defines what a source is (and its errors and replacements); each other module
is one kind of source. A new source is a new module here and a line below.
"""

from typing import TYPE_CHECKING

from multimodal_dataset.lazy import exports

if TYPE_CHECKING:
    from multimodal_dataset.sources.arrow_column import ArrowColumn
    from multimodal_dataset.sources.decoded_cache import CacheError, CacheWarning
    from multimodal_dataset.sources.image_bytes import ImageBytes
    from multimodal_dataset.sources.images import ImageFiles
    from multimodal_dataset.sources.numeric import NumericColumns, Standardizer
    from multimodal_dataset.sources.protocol import (
        GatherContext,
        PrecomputedSource,
        ReplacedSamplesWarning,
        Replacement,
        SampleError,
        Source,
    )
    from multimodal_dataset.sources.text import TextTokens, TruncatedTextWarning, Vocabulary

__all__ = [
    "ArrowColumn",
    "CacheError",
    "CacheWarning",
    "GatherContext",
    "ImageBytes",
    "ImageFiles",
    "NumericColumns",
    "PrecomputedSource",
    "ReplacedSamplesWarning",
    "Replacement",
    "SampleError",
    "Source",
    "Standardizer",
    "TextTokens",
    "TruncatedTextWarning",
    "Vocabulary",
]

# Imported on first use: see multimodal_dataset.lazy.
__getattr__, __dir__ = exports(
    __name__,
    {
        "ArrowColumn": "multimodal_dataset.sources.arrow_column",
        "CacheError": "multimodal_dataset.sources.decoded_cache",
        "CacheWarning": "multimodal_dataset.sources.decoded_cache",
        "GatherContext": "multimodal_dataset.sources.protocol",
        "ImageBytes": "multimodal_dataset.sources.image_bytes",
        "ImageFiles": "multimodal_dataset.sources.images",
        "NumericColumns": "multimodal_dataset.sources.numeric",
        "PrecomputedSource": "multimodal_dataset.sources.protocol",
        "ReplacedSamplesWarning": "multimodal_dataset.sources.protocol",
        "Replacement": "multimodal_dataset.sources.protocol",
        "SampleError": "multimodal_dataset.sources.protocol",
        "Source": "multimodal_dataset.sources.protocol",
        "Standardizer": "multimodal_dataset.sources.numeric",
        "TextTokens": "multimodal_dataset.sources.text",
        "TruncatedTextWarning": "multimodal_dataset.sources.text",
        "Vocabulary": "multimodal_dataset.sources.text",
    },
)
