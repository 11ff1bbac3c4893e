"""Sources: per-sample data that the dataset reads, decodes or computes a batch at a time.

`protocol` defines what a source is (and its errors and replacements); each other module
is one kind of source. A new source is a new module here and a line below.
"""

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
