"""`python -m minims.experiment`: the experiments' command line (cli.py)."""
import sys

from .cli import main

sys.exit(main())
