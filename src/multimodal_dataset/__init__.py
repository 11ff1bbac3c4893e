"""Feed multi-input Keras 3 models, identically on TensorFlow, JAX and PyTorch.

```python
from multimodal_dataset import MultimodalDataset

ds = MultimodalDataset((images, token_ids, numbers), labels, batch_size=64, seed=0)
ds.check(model)
model.fit(ds, epochs=5)
```
"""

from multimodal_dataset import models, synthetic
from multimodal_dataset.dataset import MultimodalDataset
from multimodal_dataset.structure import ArraySpec

__all__ = ["ArraySpec", "MultimodalDataset", "models", "synthetic"]
__version__ = "0.1.0"
