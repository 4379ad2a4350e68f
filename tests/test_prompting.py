"""Prompt classification: prompts built by hand, and next-token log-probabilities of tiny
random Llama and GPT-2 models read with a shared-prefix KV cache against each prompt read
whole, alone and unpadded (the reference; tolerance 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlpbook.prompting import (
    _common_prefix,
    candidate_ids,
    chat_prompt,
    next_token_log_probs,
    prompt,
)

WORDS = ["<pad>", "<unk>", "Review:", "Sentiment:", "positive", "negative", "a", "good", "bad",
         "film", "very", "dull", "fun", "not", "<user>", "<bot>", "<end>"]  # fmt: skip
CHAT = (
    "{% for m in messages %}{{ '<user>' if m['role'] == 'user' else '<bot>' }} "
    "{{ m['content'] }} <end> {% endfor %}{% if add_generation_prompt %}<bot>{% endif %}"
)


def _tokenizer():
    """A word-level tokenizer over WORDS (split on whitespace), with a tiny chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.chat_template = CHAT
    return tokenizer


def _model(kind: str):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if kind == "gpt2":
        config = GPT2Config(
            n_layer=2, n_head=4, n_embd=32, vocab_size=len(WORDS), n_positions=64,
            initializer_range=0.3,  # livelier predictions than the default 0.02
        )  # fmt: skip
        return GPT2LMHeadModel(config).eval()
    config = LlamaConfig(
        vocab_size=len(WORDS), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        initializer_range=0.3,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_prompt_by_hand():
    assert prompt("a dull film") == "Review: a dull film\nSentiment:"
    shots = [("a good film", "positive"), ("bad", "negative")]
    assert prompt("fun", examples=shots) == (
        "Review: a good film\nSentiment: positive\n\n"
        "Review: bad\nSentiment: negative\n\n"
        "Review: fun\nSentiment:"
    )
    custom = prompt("fun", examples=shots[:1], template="Q: {text} A:", answer=" {answer}.",
                    separator=" | ")  # fmt: skip
    assert custom == "Q: a good film A: positive. | Q: fun A:"


def test_chat_prompt_by_hand():
    shots = [("bad", "negative")]
    text = chat_prompt(_tokenizer(), "fun", instruction="Sentiment:", examples=shots)
    assert text == (
        "<user> Sentiment:\n\nbad <end> <bot> negative <end> <user> Sentiment:\n\nfun <end> <bot>"
    )


def test_candidate_ids_are_single_distinct_tokens():
    tokenizer = _tokenizer()
    assert candidate_ids(tokenizer, ["negative", "positive"]) == [5, 4]
    with pytest.raises(ValueError, match=r"'very good' is 2 tokens \[10, 7\]"):
        candidate_ids(tokenizer, ["negative", "very good"])
    with pytest.raises(ValueError, match="share a token"):
        candidate_ids(tokenizer, ["bad", "bad"])


def test_common_prefix_by_hand():
    assert _common_prefix([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert _common_prefix([[1, 2], [1, 2, 3]]) == 2
    assert _common_prefix([[7], [1, 2]]) == 0
    assert _common_prefix([[4, 5, 6]]) == 3


def _reference(model, tokenizer, prompts, candidates):
    """Each prompt read whole, alone, with no padding: log-softmax at its last token."""
    wanted = candidate_ids(tokenizer, candidates)
    rows = []
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([tokenizer(p)["input_ids"]])
            rows.append(torch.log_softmax(model(input_ids=ids).logits[0, -1], -1)[wanted])
    return torch.stack(rows).numpy()


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("share_prefix", [True, False])
def test_log_probs_equal_reading_each_prompt_alone(kind, share_prefix):
    tokenizer, model = _tokenizer(), _model(kind)
    shots = [("a good film", "positive"), ("very bad", "negative")]
    texts = ["fun", "a very very dull film", "not a good film", "bad", "a film not fun"]
    prompts = [prompt(t, examples=shots) for t in texts]  # a shared prefix of 12 tokens
    candidates = ["negative", "positive"]
    ours = next_token_log_probs(
        model, tokenizer, prompts, candidates=candidates, batch_size=2, share_prefix=share_prefix
    )
    np.testing.assert_allclose(ours, _reference(model, tokenizer, prompts, candidates), atol=1e-5)
    assert ours.shape == (5, 2) and (ours < 0).all()


def test_log_probs_over_the_whole_vocabulary_sum_to_one():
    tokenizer, model = _tokenizer(), _model("llama")
    prompts = [prompt(t) for t in ["fun", "a dull film", "good"]]
    log_probs = next_token_log_probs(model, tokenizer, prompts, candidates=WORDS)
    np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), 1.0, atol=1e-5)


def test_prompts_that_differ_only_at_the_end_keep_one_token_to_read():
    """Identical prompts share everything; the last token is still read to get its logits."""
    tokenizer, model = _tokenizer(), _model("llama")
    prompts = [prompt("a good film")] * 3
    ours = next_token_log_probs(model, tokenizer, prompts, candidates=["positive", "negative"])
    reference = _reference(model, tokenizer, prompts[:1], ["positive", "negative"])
    np.testing.assert_allclose(ours, np.repeat(reference, 3, axis=0), atol=1e-5)


def test_log_probs_reject_bad_input():
    tokenizer, model = _tokenizer(), _model("llama")
    with pytest.raises(TypeError, match="not one string"):
        next_token_log_probs(model, tokenizer, "fun", candidates=["positive"])
    with pytest.raises(ValueError, match="no prompts"):
        next_token_log_probs(model, tokenizer, [], candidates=["positive"])
    with pytest.raises(ValueError, match="batch_size must be positive"):
        next_token_log_probs(model, tokenizer, ["fun"], candidates=["positive"], batch_size=0)
