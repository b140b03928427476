"""A character-level tokenizer that ``transformers.AutoTokenizer`` loads from disk.

Each character of the alphabet is one token; the special tokens are ``<pad>``, ``<s>``,
``</s>`` and ``<unk>``. Built with the ``tokenizers`` library, so no vocabulary file has
to be downloaded.

>>> tok = build_char_tokenizer("0123456789+= ")
>>> tok("12+3=").input_ids[:3] == [tok.bos_token_id, tok.convert_tokens_to_ids("1"),
...                                 tok.convert_tokens_to_ids("2")]
True
>>> tok.decode(tok("12+3=", add_special_tokens=False).input_ids)
'12+3='
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
DEFAULT_ALPHABET = (
    " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-*/=<>()[]{},.:;!?'\"_#|\n"
)


def build_char_tokenizer(alphabet: str = DEFAULT_ALPHABET) -> PreTrainedTokenizerFast:
    """A fast tokenizer with one token per character of ``alphabet`` (order kept)."""
    chars = list(dict.fromkeys(alphabet))  # dedupe, keep order: ids stay stable
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Split into single characters, keeping every character (spaces and newlines too).
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    bos, eos = vocab["<s>"], vocab["</s>"]
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
    )
