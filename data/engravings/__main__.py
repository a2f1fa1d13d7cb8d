"""python -m data.engravings --out DIR: write the engraving set (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
