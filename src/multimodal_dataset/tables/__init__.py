"""Tables of image paths (or image bytes), captions, numbers and targets: reading them,
the preprocessing fitted on their training rows, and `from_table`."""

from multimodal_dataset.tables.factory import from_table, from_webdataset, split_rows
from multimodal_dataset.tables.preprocessing import TablePreprocessing
from multimodal_dataset.tables.reading import read_table
from multimodal_dataset.tables.table import Table
from multimodal_dataset.tables.table_dataset import TableDataset

__all__ = [
    "Table",
    "TableDataset",
    "TablePreprocessing",
    "from_table",
    "from_webdataset",
    "read_table",
    "split_rows",
]
