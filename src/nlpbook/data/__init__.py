"""The book's data: a verified, cached registry of files and readers for each dataset.

>>> from nlpbook import data
>>> text = data.tiny_shakespeare()            # doctest: +SKIP
>>> data.fetch("sst2/dev.tsv")                # doctest: +SKIP
PosixPath('.../nlpbook/sst2/dev.tsv')
"""

from nlpbook.data.datasets import (
    MULTI30K_SPLITS,
    WORD_SIMILARITY,
    XQUAD_LANGUAGES,
    contexts,
    multi30k,
    rt_polarity,
    squad,
    sst2,
    tiny_shakespeare,
    wikitext2,
    wnut17,
    word_analogies,
    word_similarity,
    xquad,
)
from nlpbook.data.registry import (
    CACHE_ENV,
    MIRROR_ENV,
    DataUnavailableError,
    Registry,
    cache_dir,
    default_registry,
    fetch,
    mirror_dir,
)
from nlpbook.data.verify import verify

__all__ = [
    "CACHE_ENV",
    "MIRROR_ENV",
    "MULTI30K_SPLITS",
    "WORD_SIMILARITY",
    "XQUAD_LANGUAGES",
    "DataUnavailableError",
    "Registry",
    "cache_dir",
    "contexts",
    "default_registry",
    "fetch",
    "mirror_dir",
    "multi30k",
    "rt_polarity",
    "squad",
    "sst2",
    "tiny_shakespeare",
    "verify",
    "wikitext2",
    "wnut17",
    "word_analogies",
    "word_similarity",
    "xquad",
]
