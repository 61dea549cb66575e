import sys

from mmif.cli import main

sys.exit(main())
