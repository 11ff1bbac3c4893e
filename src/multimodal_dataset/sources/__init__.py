"""Sources: per-sample data that the dataset reads, decodes or computes a batch at a time.

`protocol` defines what a source is (its optional abilities, errors and replacements);
`arrays`, `numeric` and `categorical` are sources of arrays, numbers and category ids,
`images/` and `text/` the image and text sources with their decoders, tokenizers and
caches. A new source is a new
module here (or in `images/` or `text/`) and a line below.
"""

from typing import TYPE_CHECKING

from multimodal_dataset._utils.lazy import exports

if TYPE_CHECKING:
    from multimodal_dataset.io.arrow_column import ArrowColumn
    from multimodal_dataset.io.cache_files import CacheError, CacheWarning
    from multimodal_dataset.sources.categorical import (
        CategoricalColumn,
        CategoryLookup,
        CategoryOverflowWarning,
    )
    from multimodal_dataset.sources.images.files import ImageFiles
    from multimodal_dataset.sources.images.from_bytes import ImageBytes
    from multimodal_dataset.sources.numeric import NumericColumns, Standardizer
    from multimodal_dataset.sources.protocol import (
        GatherContext,
        PrecomputedSource,
        ReplacedSamplesWarning,
        Replacement,
        SampleError,
        Source,
    )
    from multimodal_dataset.sources.text.tokens import TextTokens, TruncatedTextWarning
    from multimodal_dataset.sources.text.vocabulary import Vocabulary

__all__ = [
    "ArrowColumn",
    "CacheError",
    "CacheWarning",
    "CategoricalColumn",
    "CategoryLookup",
    "CategoryOverflowWarning",
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

# Imported on first use: see multimodal_dataset._utils.lazy.
__getattr__, __dir__ = exports(
    __name__,
    {
        "ArrowColumn": "multimodal_dataset.io.arrow_column",
        "CacheError": "multimodal_dataset.io.cache_files",
        "CacheWarning": "multimodal_dataset.io.cache_files",
        "CategoricalColumn": "multimodal_dataset.sources.categorical",
        "CategoryLookup": "multimodal_dataset.sources.categorical",
        "CategoryOverflowWarning": "multimodal_dataset.sources.categorical",
        "GatherContext": "multimodal_dataset.sources.protocol",
        "ImageBytes": "multimodal_dataset.sources.images.from_bytes",
        "ImageFiles": "multimodal_dataset.sources.images.files",
        "NumericColumns": "multimodal_dataset.sources.numeric",
        "PrecomputedSource": "multimodal_dataset.sources.protocol",
        "ReplacedSamplesWarning": "multimodal_dataset.sources.protocol",
        "Replacement": "multimodal_dataset.sources.protocol",
        "SampleError": "multimodal_dataset.sources.protocol",
        "Source": "multimodal_dataset.sources.protocol",
        "Standardizer": "multimodal_dataset.sources.numeric",
        "TextTokens": "multimodal_dataset.sources.text.tokens",
        "TruncatedTextWarning": "multimodal_dataset.sources.text.tokens",
        "Vocabulary": "multimodal_dataset.sources.text.vocabulary",
    },
)
