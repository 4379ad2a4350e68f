"""Our BERT against Hugging Face's: random small models, the real MiniLM, and the MLM head."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from transformers import BertConfig, BertForMaskedLM, BertModel, GPT2Config, GPT2Model

from nlpbook import assets, set_seed
from nlpbook.bert import BERT, IGNORE_INDEX, BERTConfig, BERTForMaskedLM, mean_pool
from nlpbook.pretrained import load_encoder

SENTENCES = [
    "The cat sat on the mat.",
    "A transformer encoder reads the whole sentence at once, to the left and to the right.",
    "Hi!",
    "Naïve café owners don't split hairs — or do they? 😀",
]


def _small_hf_config() -> BertConfig:
    return BertConfig(
        vocab_size=101,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=24,
        type_vocab_size=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def _padded_batch() -> dict[str, torch.Tensor]:
    """Three sequences of 9, 5 and 2 real tokens, right-padded, with two segments."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 101, (3, 9), generator=g)
    lengths = torch.tensor([9, 5, 2])
    mask = (torch.arange(9) < lengths[:, None]).long()
    segments = (torch.arange(9) >= 3).long().expand(3, 9) * mask
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": segments}


@pytest.fixture(scope="module")
def minilm():
    return load_encoder("minilm-l6", device="cpu")


def test_from_hf_equals_a_random_bert_model_on_a_padded_batch():
    """Last hidden states of the real tokens equal BertModel's (abs 1e-5)."""
    set_seed(0)
    hf = BertModel(_small_hf_config()).eval()
    ours = BERT.from_hf(hf)
    batch = _padded_batch()
    with torch.no_grad():
        expected = hf(**batch).last_hidden_state
        got = ours(**batch)
    real = batch["attention_mask"].bool()
    assert got.shape == expected.shape == (3, 9, 32)
    torch.testing.assert_close(got[real], expected[real], rtol=0, atol=1e-5)
    assert not ours.training


def test_padding_and_batching_do_not_change_a_sentence():
    """A sentence alone equals the same sentence inside a padded batch (abs 1e-5)."""
    set_seed(0)
    ours = BERT.from_hf(BertModel(_small_hf_config()).eval())
    batch = _padded_batch()
    with torch.no_grad():
        together = ours(**batch)
        alone = ours(batch["input_ids"][1:2, :5], token_type_ids=batch["token_type_ids"][1:2, :5])
    torch.testing.assert_close(together[1:2, :5], alone, rtol=0, atol=1e-5)


def test_minilm_equals_hugging_face_on_real_sentences(minilm):
    """The real all-MiniLM-L6-v2 through our BERT equals HF's BertModel (abs 1e-4)."""
    tokenizer, hf = minilm
    ours = BERT.from_hf(hf)
    assert ours.config == BERTConfig.minilm_l6(dropout=0.0)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = hf(**batch).last_hidden_state
        got = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    real = batch["attention_mask"].bool()
    assert real.sum(1).tolist() != [real.size(1)] * len(SENTENCES)  # the batch is padded
    torch.testing.assert_close(got[real], expected[real], rtol=0, atol=1e-4)


def test_minilm_sentence_embeddings_equal_sentence_transformers(minilm):
    """Mean-pooled, L2-normalised embeddings equal SentenceTransformer.encode (abs 1e-5)."""
    from sentence_transformers import SentenceTransformer

    tokenizer, hf = minilm
    ours = BERT.from_hf(hf)
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    got = F.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)
    reference = SentenceTransformer(str(assets.locate("minilm-l6")), device="cpu")
    expected = reference.encode(SENTENCES, convert_to_tensor=True)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert got.norm(dim=-1) == pytest.approx(torch.ones(len(SENTENCES)), abs=1e-5)


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2)
    pooled = mean_pool(hidden, torch.tensor([[1, 1, 0]]))
    assert pooled.tolist() == [[2.0, 3.0]]
    with pytest.raises(ValueError, match=r"expected \(1, 3\)"):
        mean_pool(hidden, torch.ones(1, 2))


def test_mlm_head_equals_bert_for_masked_lm():
    """Logits equal BertForMaskedLM's (abs 1e-5); the decoder is tied; -100 labels ignored."""
    set_seed(0)
    hf = BertForMaskedLM(_small_hf_config()).eval()
    ours = BERTForMaskedLM.from_hf(hf)
    batch = _padded_batch()
    labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
    labels[0, 2], labels[1, 4], labels[2, 0] = 7, 50, 3
    with torch.no_grad():
        expected = hf(**batch, labels=labels)
        logits, loss = ours(**batch, labels=labels)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(logits[real], expected.logits[real], rtol=0, atol=1e-5)
    torch.testing.assert_close(loss, expected.loss, rtol=0, atol=1e-5)
    assert ours.head.decoder.weight is ours.bert.embed.weight
    # the loss is the mean cross-entropy of the three labelled tokens only
    rows = logits[[0, 1, 2], [2, 4, 0]]  # (3, V)
    by_hand = F.cross_entropy(rows, torch.tensor([7, 50, 3]))
    torch.testing.assert_close(loss, by_hand)
    assert ours(batch["input_ids"])[1] is None


def test_masked_lm_trains_from_scratch():
    """Our own BERTForMaskedLM (no HF weights) learns to fill a fixed mask: the loss falls."""
    set_seed(0)
    model = BERTForMaskedLM(BERTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16))
    ids = torch.randint(1, 20, (4, 8))
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 3] = ids[:, 3]
    masked = ids.clone()
    masked[:, 3] = 19
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        _, loss = model(masked, labels=labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_errors_say_what_was_expected():
    set_seed(0)
    ours = BERT.from_hf(BertModel(_small_hf_config()).eval())
    ids = torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(
        ValueError, match=r"input_ids must lie in \[0, 101\), got values from 0 to 101"
    ):
        ours(torch.tensor([[0, 101]]))
    with pytest.raises(ValueError, match=r"longer than block_size=24"):
        ours(torch.ones(1, 25, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 4\), expected"):
        ours(ids, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"token_type_ids must lie in \[0, 2\)"):
        ours(ids, token_type_ids=torch.full((2, 5), 2))
    with pytest.raises(ValueError, match=r"integer ids \(B, T\)"):
        ours(torch.ones(5, dtype=torch.long))
    with pytest.raises(ValueError, match="0 \\(padding\\) and 1"):
        ours(ids, torch.full((2, 5), 2))
    gpt2 = GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=10, n_positions=8))
    with pytest.raises(ValueError, match="expected a Hugging Face BertModel.*GPT2Model.*'gpt2'"):
        BERT.from_hf(gpt2)
    with pytest.raises(ValueError, match="exact GELU"):
        BERT.from_hf(
            BertModel(BertConfig(**(_small_hf_config().to_dict() | {"hidden_act": "relu"})))
        )
    with pytest.raises(ValueError, match="expects a Hugging Face BertForMaskedLM, got BertModel"):
        BERTForMaskedLM.from_hf(BertModel(_small_hf_config()))
    with pytest.raises(ValueError, match=r"labels has shape \(2, 4\)"):
        BERTForMaskedLM(BERTConfig(vocab_size=10, n_layer=1, n_head=2, n_embd=8))(
            ids, labels=torch.zeros(2, 4, dtype=torch.long)
        )
