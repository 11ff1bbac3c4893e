import sys

from portability.run import main

sys.exit(main())
