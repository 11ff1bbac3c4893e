"""Tables of image paths (or image bytes), captions, numbers and targets: reading them,
the preprocessing fitted on their training rows, and `from_table`."""

from typing import TYPE_CHECKING

from multimodal_dataset._utils.lazy import exports

if TYPE_CHECKING:
    from multimodal_dataset.tables.factory import from_table, from_webdataset, split_rows
    from multimodal_dataset.tables.preprocessing import TableDataset, TablePreprocessing
    from multimodal_dataset.tables.reading import read_table
    from multimodal_dataset.tables.table import Table

__all__ = [
    "Table",
    "TableDataset",
    "TablePreprocessing",
    "from_table",
    "from_webdataset",
    "read_table",
    "split_rows",
]

# Imported on first use: see multimodal_dataset._utils.lazy.
__getattr__, __dir__ = exports(
    __name__,
    {
        "Table": "multimodal_dataset.tables.table",
        "TableDataset": "multimodal_dataset.tables.preprocessing",
        "TablePreprocessing": "multimodal_dataset.tables.preprocessing",
        "from_table": "multimodal_dataset.tables.factory",
        "from_webdataset": "multimodal_dataset.tables.factory",
        "read_table": "multimodal_dataset.tables.reading",
        "split_rows": "multimodal_dataset.tables.factory",
    },
)
