"""nlpbook: the code of *Deep Learning for Natural Language Processing*.

Each module holds one concept and is what the chapter about it teaches from:
`data` (datasets), `profile` (run sizes), `train` (the training loop), `plots`,
`assets` (pretrained files). The names below are the ones every chapter uses.
"""

from nlpbook import assets, data, plots, profile
from nlpbook.device import auto_device
from nlpbook.glue import glue
from nlpbook.seed import set_seed
from nlpbook.train import History, fit

__version__ = "0.1.0"

__all__ = [
    "History",
    "assets",
    "auto_device",
    "data",
    "fit",
    "glue",
    "plots",
    "profile",
    "set_seed",
]
