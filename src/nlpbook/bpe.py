"""Byte-pair encoding (BPE): a tokenizer that learns its vocabulary by merging frequent pairs.

Text is first UTF-8 bytes, ids 0..255. Training repeatedly finds the most frequent pair of
adjacent ids and replaces every occurrence with a new id, recording the merge (Gage 1994;
Sennrich et al. 2016). Encoding replays the merges, earliest learned first; decoding looks
up each id's bytes. GPT-2's tokenizer (Radford et al. 2019) is exactly this, run on the
chunks of a regex pre-tokenizer, and `load_gpt2` reads its files into the same class.

>>> tok = BPETokenizer().train("aaabdaaabac", 256 + 3)
>>> tok.merges
{(97, 97): 256, (97, 98): 257, (256, 257): 258}
>>> tok.encode("aaabdaaabac")
[258, 100, 258, 97, 99]
>>> tok.decode([258, 100])
'aaabd'

Ties between equally frequent pairs go to the smaller pair (compare the first id, then the
second), so training is deterministic and both trainers below learn the same merges.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Literal

from nlpbook.pretokenize import GPT2_PATTERN, pretokenize, special_regex, split_special

Pair = tuple[int, int]

_FORMAT = "nlpbook-bpe 1"
_CACHE_LIMIT = 1 << 18  # chunks remembered by `encode` before the cache starts afresh


# --- the two primitives ----------------------------------------------------------------


def get_stats(ids: Sequence[int], counts: dict[Pair, int] | None = None) -> dict[Pair, int]:
    """How often each pair of neighbours occurs in `ids`, added into `counts` if given.

    >>> get_stats([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in pairwise(ids):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """`ids` with every occurrence of `pair`, scanning left to right, replaced by `new_id`.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]
    >>> merge([5, 5, 5], (5, 5), 6)   # occurrences do not overlap
    [6, 5]
    """
    first, second = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == first and ids[i + 1] == second:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _best(counts: Mapping[Pair, int]) -> Pair:
    """The most frequent pair; among equals, the smallest."""
    return min(counts, key=lambda pair: (-counts[pair], pair))


# --- training ----------------------------------------------------------------------------


def train_naive(chunks: Iterable[str], num_merges: int, *, first_id: int = 256) -> dict[Pair, int]:
    """Learn up to `num_merges` merges by recounting every pair of every chunk each time.

    Simple and slow: each merge costs a pass over the whole text. Stops early if no pair
    is left. Returns ``{pair: new_id}`` in the order learned.

    >>> train_naive(["hug", "pug", "hugs"], 2)
    {(117, 103): 256, (104, 256): 257}
    """
    ids = [list(chunk.encode("utf-8")) for chunk in chunks]
    merges: dict[Pair, int] = {}
    for i in range(num_merges):
        counts: dict[Pair, int] = {}
        for chunk_ids in ids:
            get_stats(chunk_ids, counts)
        if not counts:
            break
        pair = _best(counts)
        new_id = first_id + i
        ids = [merge(chunk_ids, pair, new_id) for chunk_ids in ids]
        merges[pair] = new_id
    return merges


def train_fast(chunks: Iterable[str], num_merges: int, *, first_id: int = 256) -> dict[Pair, int]:
    """Learn the same merges as `train_naive`, updating pair counts only where they change.

    Three ideas make it fast: (1) a text has far fewer distinct chunks than chunks, so each
    distinct chunk is kept once with its count; (2) an index from each pair to the chunks
    that contain it says which chunks a merge touches; (3) a heap of (-count, pair) finds
    the most frequent pair without scanning them all (entries whose count has since
    changed are stale and skipped when popped).

    >>> train_fast(["hug", "pug", "hugs"], 2)
    {(117, 103): 256, (104, 256): 257}
    """
    distinct = Counter(chunks)
    words = [list(chunk.encode("utf-8")) for chunk in distinct]
    freq = list(distinct.values())
    counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)
    for w, ids in enumerate(words):
        for pair in pairwise(ids):
            counts[pair] += freq[w]
            where[pair].add(w)
    heap = [(-count, pair) for pair, count in counts.items()]
    heapq.heapify(heap)

    merges: dict[Pair, int] = {}
    while heap and len(merges) < num_merges:
        neg_count, pair = heapq.heappop(heap)
        if counts.get(pair) != -neg_count:
            continue  # stale: this pair's count changed after the entry was pushed
        new_id = first_id + len(merges)
        merges[pair] = new_id
        delta: dict[Pair, int] = defaultdict(int)
        for w in where.pop(pair):
            old, n = words[w], freq[w]
            new = merge(old, pair, new_id)
            words[w] = new
            old_pairs, new_pairs = list(pairwise(old)), list(pairwise(new))
            for p in old_pairs:
                delta[p] -= n
            for p in new_pairs:
                delta[p] += n
            gone, came = set(old_pairs), set(new_pairs)
            for p in gone - came:
                if p != pair:
                    where[p].discard(w)
            for p in came - gone:
                where[p].add(w)
        for p, d in delta.items():
            if d == 0:
                continue
            count = counts[p] + d
            if count > 0:
                counts[p] = count
                heapq.heappush(heap, (-count, p))
            else:  # the pair has vanished from the text
                del counts[p]
                where.pop(p, None)
    return merges


# --- the tokenizer -----------------------------------------------------------------------


class BPETokenizer:
    """A byte-level BPE tokenizer with regex pre-tokenization and special tokens.

    ``byte_ids[b]`` is the id of byte ``b`` (``0..255`` for a tokenizer trained here;
    GPT-2 numbers its bytes differently). ``merges`` maps each learned pair to its new id,
    in the order learned, which is the order `encode` applies them. ``special_tokens``
    maps strings such as ``"<|endoftext|>"`` to ids; `encode` never splits or merges them.
    Treat these attributes as read-only: `train`, `load` and `register_special_tokens`
    are the ways to change a tokenizer.

    >>> tok = BPETokenizer().train("low lower lowest", 258, special_tokens=["<|end|>"])
    >>> tok.encode("lowest<|end|>")
    [256, 119, 101, 115, 116, 257]
    >>> tok.decode(tok.encode("lowest<|end|>"))
    'lowest<|end|>'
    """

    def __init__(
        self,
        *,
        pattern: str = GPT2_PATTERN,
        merges: Mapping[Pair, int] | None = None,
        special_tokens: Mapping[str, int] | None = None,
        byte_ids: Sequence[int] | None = None,
    ) -> None:
        self.pattern = pattern
        self.byte_ids = list(range(256) if byte_ids is None else byte_ids)
        self.merges = dict(merges or {})
        self.special_tokens = dict(special_tokens or {})
        self._rebuild()

    # -- the vocabulary

    def _rebuild(self) -> None:
        """Check the parts fit together and derive the lookup tables from them."""
        import regex

        self._regex = regex.compile(self.pattern)
        if len(self.byte_ids) != 256 or len(set(self.byte_ids)) != 256:
            raise ValueError("byte_ids must give 256 distinct ids, one per byte value")
        vocab = {i: bytes([b]) for b, i in enumerate(self.byte_ids)}
        for rank, ((a, b), new_id) in enumerate(self.merges.items()):
            if a not in vocab or b not in vocab:
                raise ValueError(f"merge #{rank} {(a, b)} uses an id not defined before it")
            if new_id in vocab:
                raise ValueError(f"merge #{rank} {(a, b)} -> {new_id} reuses id {new_id}")
            vocab[new_id] = vocab[a] + vocab[b]
        self.vocab: dict[int, bytes] = vocab
        for name, i in self.special_tokens.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"special tokens must be non-empty strings, got {name!r}")
            if i in vocab or list(self.special_tokens.values()).count(i) > 1:
                raise ValueError(f"special token {name!r} has id {i}, which is already taken")
        self._ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self._id_bytes = vocab | {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        self._special_regex = special_regex(self.special_tokens)
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of ids: 256 bytes, one per merge, and the special tokens."""
        return len(self._id_bytes)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={list(self.special_tokens)})"
        )

    def register_special_tokens(self, names: Iterable[str]) -> dict[str, int]:
        """Add special tokens with the next free ids; return ``{name: id}`` of all of them.

        >>> BPETokenizer().register_special_tokens(["<|endoftext|>"])
        {'<|endoftext|>': 256}
        """
        if isinstance(names, str):
            raise TypeError("register_special_tokens expects a list of strings, not one string")
        special = dict(self.special_tokens)
        for name in names:
            if name not in special:
                special[name] = max(self._id_bytes.keys() | special.values()) + 1
        self.special_tokens = special
        self._rebuild()
        return dict(special)

    # -- training

    def train(
        self,
        text: str,
        vocab_size: int,
        *,
        special_tokens: Sequence[str] = (),
        method: Literal["fast", "naive"] = "fast",
    ) -> BPETokenizer:
        """Learn merges from `text` until there are `vocab_size` ids; return self.

        `vocab_size` counts the 256 bytes, the merges and the `special_tokens`, which get
        the last ids. Occurrences of the special tokens in `text` are cut out before
        training. With too little text the vocabulary stops growing when no pair is left.
        `method` picks the trainer; "fast" and "naive" learn identical merges.
        """
        _check_str(text, "train")
        if isinstance(special_tokens, str):
            raise TypeError("special_tokens must be a list of strings, not one string")
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
            raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
        smallest = 256 + len(special_tokens)
        if vocab_size < smallest:
            raise ValueError(
                f"vocab_size must be at least {smallest} (256 bytes + {len(special_tokens)} "
                f"special tokens), got {vocab_size}"
            )
        trainers = {"fast": train_fast, "naive": train_naive}
        if method not in trainers:
            raise ValueError(f"unknown method {method!r}; expected 'fast' or 'naive'")
        chunks = [
            chunk
            for piece, is_special in split_special(text, special_tokens)
            if not is_special
            for chunk in pretokenize(piece, pattern=self.pattern)
        ]
        self.byte_ids = list(range(256))
        self.merges = trainers[method](chunks, vocab_size - smallest)
        self.special_tokens = {}
        self._rebuild()
        self.register_special_tokens(special_tokens)
        return self

    # -- encoding and decoding

    def _encode_chunk(self, chunk: str) -> list[int]:
        """The ids of one pre-tokenized chunk: apply merges, lowest rank first."""
        byte_ids, ranks, merges = self.byte_ids, self._ranks, self.merges
        ids = [byte_ids[b] for b in chunk.encode("utf-8")]
        while len(ids) >= 2:
            pair = min(pairwise(ids), key=lambda p: ranks.get(p, len(ranks)))
            if pair not in ranks:
                break  # no pair left that the tokenizer knows how to merge
            ids = merge(ids, pair, merges[pair])
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """`encode` with special-token strings treated as plain text."""
        _check_str(text, "encode_ordinary")
        cache = self._cache
        out: list[int] = []
        for chunk in self._regex.findall(text):
            ids = cache.get(chunk)
            if ids is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                ids = cache[chunk] = self._encode_chunk(chunk)
            out.extend(ids)
        return out

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        """The ids of `text`; registered special tokens in it become their single ids.

        With ``allow_special=False`` special-token strings are encoded as ordinary text
        (useful when the text comes from users who should not be able to inject them).
        """
        _check_str(text, "encode")
        if self._special_regex is None or not allow_special:
            return self.encode_ordinary(text)
        out: list[int] = []
        for i, piece in enumerate(self._special_regex.split(text)):
            if i % 2:  # odd pieces are the captured special tokens
                out.append(self.special_tokens[piece])
            elif piece:
                out.extend(self.encode_ordinary(piece))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`. Bytes that are not valid UTF-8 on their own become U+FFFD."""
        if isinstance(ids, str | bytes):
            raise TypeError(f"decode expects a list of int ids, got {type(ids).__name__}")
        ids = list(ids)
        try:
            data = b"".join(self._id_bytes[i] for i in ids)
        except (KeyError, TypeError):
            bad = [i for i in ids if not isinstance(i, int) or i not in self._id_bytes]
            raise ValueError(
                f"decode got unknown token ids {bad[:5]}; expected ints in the vocabulary "
                f"(ids 0..{max(self._id_bytes)} of {self.vocab_size})"
            ) from None
        return data.decode("utf-8", errors="replace")

    # -- saving and loading

    def save(self, path: str | Path) -> None:
        """Write the tokenizer as text: a header, the pattern, byte ids, specials, merges.

        One merge per line, ``left right new``, in the order learned. Strings are JSON.
        """
        lines = [_FORMAT, f"pattern {json.dumps(self.pattern)}"]
        lines.append("bytes " + " ".join(map(str, self.byte_ids)))
        lines.append(f"special {len(self.special_tokens)}")
        lines += [f"{i} {json.dumps(name)}" for name, i in self.special_tokens.items()]
        lines.append(f"merges {len(self.merges)}")
        lines += [f"{a} {b} {new}" for (a, b), new in self.merges.items()]
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a tokenizer written by `save`."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        if not lines or lines[0] != _FORMAT:
            raise ValueError(f"{path} is not a saved BPETokenizer (expected {_FORMAT!r} first)")
        try:
            pattern = json.loads(lines[1].removeprefix("pattern "))
            byte_ids = [int(x) for x in lines[2].removeprefix("bytes ").split()]
            n_special = int(lines[3].removeprefix("special "))
            special = {}
            for line in lines[4 : 4 + n_special]:
                i, name = line.split(" ", 1)
                special[json.loads(name)] = int(i)
            n_merges = int(lines[4 + n_special].removeprefix("merges "))
            merges = {}
            for line in lines[5 + n_special : 5 + n_special + n_merges]:
                a, b, new = map(int, line.split())
                merges[(a, b)] = new
        except (IndexError, ValueError) as err:
            raise ValueError(f"{path} is a damaged BPETokenizer file: {err}") from None
        if len(merges) != n_merges:
            raise ValueError(f"{path} announces {n_merges} merges but holds {len(merges)}")
        return cls(pattern=pattern, merges=merges, special_tokens=special, byte_ids=byte_ids)


def _check_str(text: object, what: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{what} expects a str, got {type(text).__name__}")


# --- GPT-2's files -----------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte, used in its vocabulary files.

    Printable Latin-1 bytes stand for themselves; the rest (controls, space, ...) are
    shifted to code points from 256 up, so that every token is a visible string.

    >>> m = bytes_to_unicode()
    >>> m[ord("a")], m[ord(" ")], m[ord("\\n")]
    ('a', 'Ġ', 'Ċ')
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    mapping, shift = {}, 0
    for b in range(256):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


def load_gpt2(folder: str | Path | None = None) -> BPETokenizer:
    """GPT-2's tokenizer (50,257 ids) from its ``encoder.json`` and ``vocab.bpe``.

    `folder` defaults to the book's verified copy, ``nlpbook.assets.locate("gpt2-tokenizer")``.
    Ids equal GPT-2's own; ``<|endoftext|>`` is a special token (id 50256).
    """
    if folder is None:
        from nlpbook.assets import locate

        folder = locate("gpt2-tokenizer")
    folder = Path(folder)
    encoder: dict[str, int] = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    lines = (folder / "vocab.bpe").read_text(encoding="utf-8").splitlines()
    byte_char = bytes_to_unicode()
    byte_ids = [encoder[byte_char[b]] for b in range(256)]
    merges: dict[Pair, int] = {}
    for line in lines:
        if line.startswith("#version") or not line.strip():
            continue
        left, right = line.split(" ")
        merges[(encoder[left], encoder[right])] = encoder[left + right]
    known = set(byte_ids) | set(merges.values())
    special = {name: i for name, i in encoder.items() if i not in known}
    if list(special) != ["<|endoftext|>"]:
        raise ValueError(f"{folder}: expected one special token <|endoftext|>, got {list(special)}")
    return BPETokenizer(
        pattern=GPT2_PATTERN, merges=merges, special_tokens=special, byte_ids=byte_ids
    )
