"""A neural machine translator: GRU encoder, Bahdanau attention, GRU decoder, beam search.

The encoder reads the source sentence with a bidirectional GRU; every source position gets
a vector (its *annotation*) that knows about the words on both sides. The decoder writes
the translation one token at a time. Before each step it asks, with its previous state as
the query, which annotations matter now (additive attention, Bahdanau et al. 2015) and
reads their weighted average, the *context*. With ``attention=False`` the context is one
fixed vector, the encoder's final states, for every step: the whole sentence has to squeeze
through it (Cho et al. 2014), the bottleneck that attention removes.

Shapes: B batch, S source length, T target length, H hidden size, C embedding size,
A attention size, V vocabulary.

>>> cfg = Seq2SeqConfig(src_vocab_size=20, tgt_vocab_size=20, embed_dim=8, hidden_size=8)
>>> model = Seq2Seq(cfg)
>>> src, src_len = torch.tensor([[5, 6, 7]]), torch.tensor([3])
>>> logits, loss = model(src, src_len, torch.tensor([[2, 9]]), torch.tensor([[9, 3]]))
>>> logits.shape
torch.Size([1, 2, 20])
>>> out = greedy_decode(model, src, src_len, max_len=4)[0]
>>> out.attention.shape[1]   # one row per output token, one column per source token
3
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from nlpbook.batching import bucket_batches, pad_batch
from nlpbook.vocab import BOS, EOS, PAD, UNK, TokenVocab


@dataclass(frozen=True)
class Seq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    embed_dim: int = 256  # C, source and target embeddings
    hidden_size: int = 256  # H, per encoder direction and for the decoder
    attn_dim: int = 256  # A, the space where queries and keys are added
    attention: bool = True  # False: a fixed context vector (the bottleneck model)
    dropout: float = 0.2
    label_smoothing: float = 0.0
    pad_id: int = 0  # the TokenVocab convention: <pad>=0, <unk>=1, <bos>=2, <eos>=3
    bos_id: int = 2
    eos_id: int = 3


class AdditiveAttention(nn.Module):
    """Bahdanau's score ``v^T tanh(W_q q + W_k k)``, softmax over the real source positions.

    The keys are projected once per sentence (`project_keys`), the query at every step.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, attn_dim, bias=False)
        self.key = nn.Linear(key_dim, attn_dim)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """(B, S, key_dim) -> (B, S, A)."""
        return self.key(keys)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """query (B, Q), projected keys (B, S, A), values (B, S, D), mask (B, S) True where real.

        Returns the context (B, D) and the weights (B, S), which sum to one over the real
        positions and are exactly zero on padding.
        """
        q = self.query(query).unsqueeze(1)  # (B, 1, A)
        scores = self.v(torch.tanh(q + keys)).squeeze(2)  # (B, S)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)  # (B, S)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (B, 1, D) -> (B, D)
        return context, weights


@dataclass
class Memory:
    """What the decoder reads from the encoder for one batch of source sentences."""

    values: Tensor  # (B, S, 2H) annotations
    keys: Tensor | None  # (B, S, A) projected annotations (None without attention)
    mask: Tensor  # (B, S) True at real tokens
    summary: Tensor  # (B, 2H) final forward and backward states

    def select(self, rows: Tensor) -> Memory:
        """The memory of the sentences at `rows` (B',), e.g. to follow beams."""
        return Memory(
            self.values[rows],
            None if self.keys is None else self.keys[rows],
            self.mask[rows],
            self.summary[rows],
        )


class Seq2Seq(nn.Module):
    """Encoder-decoder with optional attention; ``forward(src, src_lengths, tgt_in, targets)``.

    src (B, S) and src_lengths (B,) are the padded source; tgt_in (B, T) is the target
    shifted right (``<bos> y1 .. y_{T-1}``) and targets (B, T) the target itself
    (``y1 .. <eos>``), padded with `pad_id`, which the loss ignores. Training feeds the
    true previous token at every step (teacher forcing).
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = c = config
        H, C = c.hidden_size, c.embed_dim
        self.src_embed = nn.Embedding(c.src_vocab_size, C, padding_idx=c.pad_id)
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, C, padding_idx=c.pad_id)
        self.encoder = nn.GRU(C, H, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * H, H)  # encoder's final states -> decoder's first state
        self.attention = AdditiveAttention(H, 2 * H, c.attn_dim) if c.attention else None
        self.cell = nn.GRUCell(C + 2 * H, H)
        self.readout = nn.Linear(H + 2 * H + C, C)  # state, context, previous word
        self.out = nn.Linear(C, c.tgt_vocab_size)
        self.drop = nn.Dropout(c.dropout)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Memory, Tensor]:
        """The decoder's memory and its first state (B, H)."""
        if src.dim() != 2 or src_lengths.shape != src.shape[:1]:
            raise ValueError(
                f"expected src (B, S) and src_lengths (B,), got {tuple(src.shape)} "
                f"and {tuple(src_lengths.shape)}"
            )
        if int(src_lengths.min()) < 1 or int(src_lengths.max()) > src.size(1):
            raise ValueError(f"src_lengths must lie in 1..{src.size(1)}: {src_lengths.tolist()}")
        x = self.drop(self.src_embed(src))  # (B, S, C)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, h = self.encoder(packed)  # h: (2, B, H), forward and backward final states
        values, _ = nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=src.size(1)
        )  # (B, S, 2H)
        summary = torch.cat([h[0], h[1]], dim=1)  # (B, 2H)
        mask = torch.arange(src.size(1), device=src.device) < src_lengths.to(src.device)[:, None]
        keys = None if self.attention is None else self.attention.project_keys(values)
        return Memory(values, keys, mask, summary), torch.tanh(self.bridge(summary))

    def _context(self, hidden: Tensor, memory: Memory) -> tuple[Tensor, Tensor | None]:
        if self.attention is None:
            return memory.summary, None
        return self.attention(hidden, memory.keys, memory.values, memory.mask)

    def step(
        self, token: Tensor, hidden: Tensor, memory: Memory
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One decoder step: previous tokens (B,), state (B, H) -> logits (B, V), state, weights.

        The weights (B, S) are None without attention.
        """
        emb = self.drop(self.tgt_embed(token))  # (B, C)
        context, weights = self._context(hidden, memory)  # query: the previous state
        hidden = self.cell(torch.cat([emb, context], dim=1), hidden)
        return self._logits(hidden, context, emb), hidden, weights

    def _logits(self, hidden: Tensor, context: Tensor, emb: Tensor) -> Tensor:
        features = torch.tanh(self.readout(torch.cat([hidden, context, emb], dim=-1)))
        return self.out(self.drop(features))

    def forward(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        memory, hidden = self.encode(src, src_lengths)
        if tgt_in.dim() != 2 or tgt_in.size(0) != src.size(0):
            raise ValueError(f"expected tgt_in ({src.size(0)}, T), got {tuple(tgt_in.shape)}")
        embs = self.drop(self.tgt_embed(tgt_in))  # (B, T, C)
        hiddens, contexts = [], []
        for t in range(tgt_in.size(1)):
            context, _ = self._context(hidden, memory)
            hidden = self.cell(torch.cat([embs[:, t], context], dim=1), hidden)
            hiddens.append(hidden)
            contexts.append(context)
        # the output layer for all steps at once: one large matrix product instead of T
        logits = self._logits(torch.stack(hiddens, 1), torch.stack(contexts, 1), embs)  # (B,T,V)
        if targets is None:
            return logits, None
        if targets.shape != tgt_in.shape:
            raise ValueError(f"targets {tuple(targets.shape)} != tgt_in {tuple(tgt_in.shape)}")
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)),  # (B*T, V)
            targets.reshape(-1),  # (B*T,)
            ignore_index=self.config.pad_id,
            label_smoothing=self.config.label_smoothing,
        )
        return logits, loss


@dataclass
class Translation:
    """One decoded sentence: token ids (ending with ``<eos>`` if it was produced), the
    attention weights, one row per id and one column per source token (None without
    attention), and the total log-probability."""

    ids: list[int]
    attention: Tensor | None
    score: float


@torch.no_grad()
def greedy_decode(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, *, max_len: int = 60
) -> list[Translation]:
    """Take the most likely token at each step, for a whole batch at once."""
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    was_training = model.training
    model.eval()
    c = model.config
    memory, hidden = model.encode(src, src_lengths)
    B = src.size(0)
    token = torch.full((B,), c.bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    ids, weights, scores = [], [], torch.zeros(B, device=src.device)
    for _ in range(max_len):
        logits, hidden, w = model.step(token, hidden, memory)
        logp = torch.log_softmax(logits, dim=-1)  # (B, V)
        token = logp.argmax(dim=-1)  # (B,)
        scores += torch.where(done, 0.0, logp.gather(1, token[:, None]).squeeze(1))
        ids.append(token)
        weights.append(w)
        done |= token == c.eos_id
        if done.all():
            break
    model.train(was_training)
    ids_bt = torch.stack(ids, dim=1).tolist()  # (B, T)
    out = []
    for b in range(B):
        row = ids_bt[b]
        n = row.index(c.eos_id) + 1 if c.eos_id in row else len(row)
        att = None
        if weights[0] is not None:
            att = torch.stack([w[b] for w in weights[:n]])[:, : int(src_lengths[b])].cpu()
        out.append(Translation(row[:n], att, float(scores[b])))
    return out


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Sequence[int] | Tensor,
    *,
    width: int = 5,
    max_len: int = 60,
    length_penalty: float = 1.0,
) -> Translation:
    """Keep the `width` most likely partial translations of one sentence at every step.

    A hypothesis that ends with ``<eos>`` (among the top `width` candidates) is set aside,
    scored by its log-probability divided by ``length ** length_penalty`` so that short
    outputs are not favoured; the search stops when `width` are set aside, and returns the
    best. Width 1 is greedy decoding.
    """
    if width < 1 or max_len < 1:
        raise ValueError(f"width and max_len must be at least 1, got {width} and {max_len}")
    src = torch.as_tensor(src, dtype=torch.long, device=next(model.parameters()).device)
    if src.dim() != 1 or src.numel() == 0:
        raise ValueError(f"beam_search translates one non-empty sentence (S,), got {src.shape}")
    was_training = model.training
    model.eval()
    c = model.config
    memory, hidden = model.encode(src[None], torch.tensor([src.numel()]))
    S = src.numel()
    tokens = torch.full((1, 1), c.bos_id, dtype=torch.long, device=src.device)  # (k, t)
    scores = torch.zeros(1, device=src.device)  # (k,)
    attn = torch.zeros(1, 0, S, device=src.device)  # (k, t, S)
    finished: list[tuple[float, Translation]] = []
    for _ in range(max_len):
        k = tokens.size(0)
        logits, hidden, w = model.step(tokens[:, -1], hidden, memory.select(torch.zeros(k).long()))
        cand = (scores[:, None] + torch.log_softmax(logits, dim=-1)).flatten()  # (k*V,)
        top_scores, top = cand.topk(min(2 * width, cand.numel()))
        origin, token = top // logits.size(1), top % logits.size(1)
        keep = []
        for rank in range(top.numel()):
            o, t, s = int(origin[rank]), int(token[rank]), float(top_scores[rank])
            if t == c.eos_id:
                if rank < width:  # only an end among the best `width` counts
                    row = None if w is None else torch.cat([attn[o], w[o][None]]).cpu()
                    ids = tokens[o, 1:].tolist() + [t]
                    finished.append((s / len(ids) ** length_penalty, Translation(ids, row, s)))
            elif len(keep) < width:
                keep.append(rank)
        if len(finished) >= width or not keep:
            break
        sel = torch.tensor(keep, device=src.device)
        beams = origin[sel]
        tokens = torch.cat([tokens[beams], token[sel, None]], dim=1)
        scores, hidden = top_scores[sel], hidden[beams]
        if w is not None:
            attn = torch.cat([attn[beams], w[beams, None]], dim=1)
    model.train(was_training)
    if finished:
        return max(finished, key=lambda pair: pair[0])[1]
    row = None if attn.size(1) == 0 else attn[0].cpu()
    return Translation(tokens[0, 1:].tolist(), row, float(scores[0]))


# -- data: from sentence pairs to batches


def encode_pairs(
    pairs: Sequence[tuple[str, str]],
    src_vocab: TokenVocab,
    tgt_vocab: TokenVocab,
    *,
    tokenize: Callable[[str], list[str]],
    eos_id: int = 3,
) -> list[tuple[list[int], list[int]]]:
    """Each ``(source, target)`` as ids; the target ends with ``<eos>``. Unknown words
    become ``<unk>``; an empty sentence on either side is an error naming the pair."""
    out = []
    for number, (s, t) in enumerate(pairs):
        s_tok, t_tok = tokenize(s), tokenize(t)
        if not s_tok or not t_tok:
            raise ValueError(f"pair {number} has an empty side: {(s, t)!r}")
        out.append((src_vocab.encode(s_tok), tgt_vocab.encode(t_tok) + [eos_id]))
    return out


class TranslationBatches:
    """``(src, src_lengths, tgt_in, targets)`` batches of similar source lengths, reshuffled
    each epoch (see `batching.bucket_batches`)."""

    def __init__(
        self,
        encoded: Sequence[tuple[list[int], list[int]]],
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        bos_id: int = 2,
        pad_id: int = 0,
    ) -> None:
        if len(encoded) == 0:
            raise ValueError("no sentence pairs to batch")
        self.encoded = list(encoded)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.bos_id, self.pad_id = bos_id, pad_id

    def __len__(self) -> int:
        return -(-len(self.encoded) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        lengths = [len(s) + len(t) / 1000 for s, t in self.encoded]  # ties: by target length
        batches = bucket_batches(
            lengths, batch_size=self.batch_size, shuffle=self.shuffle, seed=self.seed
        )
        self.seed += 1
        for rows in batches:
            src, src_len = pad_batch([self.encoded[i][0] for i in rows], pad_id=self.pad_id)
            tgt, _ = pad_batch([self.encoded[i][1] for i in rows], pad_id=self.pad_id)
            bos = torch.full((len(rows), 1), self.bos_id, dtype=torch.long)
            tgt_in = torch.cat([bos, tgt[:, :-1]], dim=1)  # (B, T): shifted right
            yield src, src_len, tgt_in, tgt


def translate(
    model: Seq2Seq,
    sentences: Sequence[str],
    src_vocab: TokenVocab,
    tgt_vocab: TokenVocab,
    *,
    tokenize: Callable[[str], list[str]],
    beam: int = 1,
    batch_size: int = 128,
    max_len: int = 60,
) -> list[Translation]:
    """Translate raw sentences: greedy in batches (``beam=1``) or beam search one by one."""
    device = next(model.parameters()).device
    encoded = [src_vocab.encode(tokenize(s)) for s in sentences]
    if beam > 1:
        return [beam_search(model, ids, width=beam, max_len=max_len) for ids in encoded]
    out: list[Translation | None] = [None] * len(encoded)
    order = np.argsort([len(e) for e in encoded], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        src, src_len = pad_batch([encoded[i] for i in rows])
        for i, tr in zip(
            rows, greedy_decode(model, src.to(device), src_len, max_len=max_len), strict=True
        ):
            out[i] = tr
    return out


def detokenize(
    ids: Sequence[int], vocab: TokenVocab, *, eos_id: int = 3, keep_unk: bool = False
) -> str:
    """The words of `ids` joined by spaces, stopping at ``<eos>``.

    Special tokens (``<pad>``, ``<bos>``) are dropped, and so is ``<unk>`` unless `keep_unk`:
    the placeholder is not a word of the target language, and left in a hypothesis it would
    count as a (wrong) word in BLEU, or as three after sacrebleu splits it into ``< unk >``.
    Keep it to *show* where the model had no word.

    >>> v = TokenVocab(("<pad>", "<unk>", "<bos>", "<eos>", "a", "dog"))
    >>> detokenize([4, 1, 5, 3, 4], v), detokenize([4, 1, 5], v, keep_unk=True)
    ('a dog', 'a <unk> dog')
    """
    ids = list(ids)
    if eos_id in ids:
        ids = ids[: ids.index(eos_id)]
    drop = {PAD, BOS, EOS} if keep_unk else {PAD, BOS, EOS, UNK}
    return " ".join(t for t in vocab.decode(ids) if t not in drop)


def bleu(hypotheses: Sequence[str], references: Sequence[str], *, lowercase: bool = True):
    """Corpus BLEU (Papineni et al. 2002) computed by sacrebleu with its standard '13a'
    tokenization; case-insensitive by default since the translator writes lowercase.

    Returns sacrebleu's `BLEUScore` (``.score`` is the number, ``str()`` the full line).
    A hypothesis that still contains a special token such as ``<unk>`` is an error: it would
    be scored as words (`detokenize` removes them).
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if len(hypotheses) == 0:
        raise ValueError("no sentences to score")
    for number, hyp in enumerate(hypotheses):
        special = {PAD, UNK, BOS, EOS}.intersection(hyp.split())
        if special:
            raise ValueError(
                f"hypothesis {number} contains {sorted(special)}: {hyp!r}; special tokens are "
                "not words and must be removed before scoring (detokenize does this)"
            )
    # force: our hypotheses are tokenized on purpose; 13a splits the references the same way
    return sacrebleu.corpus_bleu(
        list(hypotheses), [list(references)], lowercase=lowercase, force=True
    )
