"""How a recipe says which tokenizer the merged model gets: mergekit's
``tokenizer_source`` shorthand and its ``tokenizer`` block, checked before any model loads.

- ``tokenizer_source: base`` -- the base model's tokenizer (the first model's without a
  base); ``union`` -- every token any model uses; any other text -- that model folder's
  tokenizer. The embedding and output-head rows of every model are aligned to the new
  vocabulary before merging (:mod:`~evomerge.merge.vocabulary`).
- ``tokenizer: {source, tokens, pad_to_multiple_of}`` -- the same ``source`` (default
  ``union``); ``tokens`` says where a token's embedding comes from (a model folder, a token
  of a model by ``token`` or ``token_id``, or zeros) and ``force`` uses that source even
  for models that have the token; ``pad_to_multiple_of`` rounds the vocabulary up.

``chat_template`` is a Jinja template, written into the merged tokenizer; ``auto``, the
template most of the models' tokenizers carry; or one of mergekit's names, ``alpaca``,
``chatml``, ``exaone``, ``llama3`` or ``mistral``, each rendering every conversation as
mergekit's template of that name does.

>>> TokenizerSettings.model_validate({"source": "union", "pad_to_multiple_of": 8,
...     "tokens": {"<|im_end|>": {"source": {"kind": "zero"}, "force": True}}}).source
'union'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evomerge.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelToken(_Strict):
    """The embedding of one token of one model, named by ``token`` or ``token_id``."""

    kind: Literal["model_token"]
    model: str
    token_id: int | None = Field(default=None, ge=0)
    token: str | None = None

    @model_validator(mode="after")
    def _one_name(self) -> ModelToken:
        if (self.token_id is None) == (self.token is None):
            raise ValueError("give exactly one of 'token' and 'token_id'")
        return self


class ZeroEmbedding(_Strict):
    kind: Literal["zero"]


class TokenEmbedding(_Strict):
    """Where one token's embedding row comes from; ``force`` also for models that have it."""

    source: ModelToken | ZeroEmbedding | str | None = None
    force: bool = False


class TokenizerSettings(_Strict):
    source: str = "union"
    tokens: dict[str, TokenEmbedding] | None = None
    pad_to_multiple_of: int | None = Field(default=None, ge=1)


#: chat templates known by name, rendering as mergekit's of the same name:
#: ChatML, each message as ``<|im_start|>{role}\n{content}<|im_end|>\n``; Llama 3, the
#: BOS token, then each message as a role header, its content trimmed and
#: ``<|eot_id|>\n``; both with a generation prompt that opens an assistant message.
#: Mistral: the BOS token, user turns as `` [INST] {content} [/INST]`` (the system message
#: before the first one's content), assistant turns as `` {content}`` and the EOS token;
#: roles must alternate.
#: Alpaca: the last system message's content trimmed and a blank line, then each user,
#: assistant and ``user_context`` message as ``### Instruction:``, ``### Response:`` or
#: ``### Input:``, a newline and its content trimmed, a blank line after each but the
#: conversation's last message (whatever its role); other roles write nothing; the
#: generation prompt opens a response unless the last message is one.
#: EXAONE: each message as ``[|{role}|]{content}``, then a newline and a blank line (user)
#: or ``[|endofturn|]`` and a blank line, with an empty system turn first when the
#: conversation has none. The indents and doubled newlines are mergekit's: its template
#: file's layout survives rendering (transformers strips only around block tags), and a
#: merged model must prompt as mergekit's does
NAMED_CHAT_TEMPLATES = {
    "chatml": ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' "
               "+ message['content'] + '<|im_end|>\n' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
    "llama3": ("{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
               "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' "
               "+ message['content'] | trim + '<|eot_id|>\n' }}{% endfor %}"
               "{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    "mistral": ("{% if messages[0]['role'] == 'system' %}"
                "{% set system = messages[0]['content'] %}{% set turns = messages[1:] %}"
                "{% else %}{% set turns = messages %}{% endif %}"
                "{{ bos_token }}{% for message in turns %}"
                "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                "{{ raise_exception('roles must alternate user, assistant, user, ... after "
                "an optional system message') }}"
                "{% elif message['role'] == 'user' %}"
                "{{ ' [INST] ' + (system + '\n\n' if loop.first and system is defined "
                "else '') + message['content'] + ' [/INST]' }}"
                "{% elif message['role'] == 'assistant' %}"
                "{{ ' ' + message['content'] + eos_token }}"
                "{% else %}{{ raise_exception('only user and assistant messages, after an "
                "optional system message') }}{% endif %}{% endfor %}"),
    "alpaca": ("{% set systems = messages | selectattr('role', 'equalto', 'system') | list %}"
               "{{ (systems | last)['content'] | trim if systems else '' }}{{ '\n\n' }}"
               "{% set headers = {'user': '### Instruction:\n', "
               "'assistant': '### Response:\n', 'user_context': '### Input:\n'} %}"
               "{% for message in messages %}{% if message['role'] in headers %}"
               "{{ headers[message['role']] + message['content'] | trim }}"
               "{% if not loop.last %}{{ '\n\n' }}{% endif %}{% endif %}{% endfor %}"
               "{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}"
               "{{ '### Response:\n' }}{% endif %}"),
    "exaone": ("{% for message in messages %}"
               "{% if loop.first and message['role'] != 'system' %}"
               "{{ '        [|system|][|endofturn|]\n\n' }}{% endif %}"
               "{{ '    [|' + message['role'] + '|]' + message['content'] + '\n        ' }}"
               "{{ '\n\n' if message['role'] == 'user' else '[|endofturn|]\n\n' }}"
               "{% endfor %}"
               "{% if add_generation_prompt %}{{ '    [|assistant|]\n' }}{% endif %}"),
}


def check_chat_template(text: str) -> None:
    """Refuse a template name this module does not know (a short line without Jinja)."""
    if text == "auto" or text in NAMED_CHAT_TEMPLATES:
        return
    if len(text) < 256 and "\n" not in text and "{" not in text:
        raise ConfigError(None, "chat_template", text,
                          "must be a Jinja chat template, 'auto' or one of the names "
                          f"{sorted(NAMED_CHAT_TEMPLATES)}; give other templates as text")
