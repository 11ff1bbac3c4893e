import sys

from multimodal_dataset.cli import main

sys.exit(main())
