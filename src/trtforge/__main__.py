import sys

from trtforge.cli import main

sys.exit(main())
