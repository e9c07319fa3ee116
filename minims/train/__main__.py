"""`python -m minims.train`: the trainer's command line, on every rank of a data-parallel run."""
import sys

from . import distributed
from .pipeline import main

sys.exit(distributed.launch(main))
