"""The k passage contexts as one batch: left-padded prompts, KV caches, one step of all of them."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from rag_core.generators.rag_decoding.prior import _SCORE_FLOATS

if TYPE_CHECKING:
    import torch


def _first_id(value: Any) -> int | None:
    if isinstance(value, list | tuple):
        return int(value[0]) if value else None
    return None if value is None else int(value)


def _pad_id(model: Any) -> int:
    """Any id will do for padding (it is masked); the model's pad, else EOS, else 0."""
    for source in (model.config, getattr(model, "generation_config", None)):
        for name in ("pad_token_id", "eos_token_id"):
            value = _first_id(getattr(source, name, None))
            if value is not None:
                return value
    return 0


class _Contexts:
    """k token contexts as one batch with a KV cache, for a causal or an encoder-decoder LM.

    Causal: left-padded to one width, attention mask, position ids counted from each row's first
    real token (as generate() does), one DynamicCache; every step appends one token per row.
    Seq2seq: right-padded through the encoder once; the decoder starts from decoder_start_token_id
    and runs batched with an EncoderDecoderCache. ``select`` keeps / repeats rows (the cache too);
    ``score`` teacher-forces continuations after the prompts without touching the running cache.
    """

    def __init__(
        self,
        model: Any,
        contexts: Sequence[Sequence[int]],
        lock: AbstractContextManager[Any] | None,
        *,
        keep_prompt: bool = False,
    ) -> None:
        import torch

        self.model = model
        self.lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.keep_prompt = keep_prompt
        self.seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
        self.device = getattr(model, "device", torch.device("cpu"))
        self.pad = _pad_id(model)
        k, width = len(contexts), max(len(c) for c in contexts)
        ids = torch.full((k, width), self.pad, dtype=torch.long)
        mask = torch.zeros((k, width), dtype=torch.long)
        for i, context in enumerate(contexts):
            row = torch.tensor(list(context), dtype=torch.long)
            if self.seq2seq:  # encoders see the whole input at once: pad on the right
                ids[i, : len(row)] = row
                mask[i, : len(row)] = 1
            else:  # causal: pad on the left, so every row's next token is in the last column
                ids[i, width - len(row) :] = row
                mask[i, width - len(row) :] = 1
        self.prompt_ids = ids.to(self.device)
        self.prompt_mask = mask.to(self.device)
        self.start_id: int | None = None
        if self.seq2seq:
            self.start_id = _first_id(
                getattr(model.generation_config, "decoder_start_token_id", None)
            )
            if self.start_id is None:
                self.start_id = _first_id(getattr(model.config, "decoder_start_token_id", None))
            if self.start_id is None:
                raise ValueError("the encoder-decoder model has no decoder_start_token_id")
        params = inspect.signature(model.forward).parameters
        self.keep_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.cache: Any = None
        self.first_logp: torch.Tensor | None = None
        self.prompt_cache: Any = None

    def _new_cache(self) -> Any:
        from transformers import DynamicCache, EncoderDecoderCache

        if self.seq2seq:
            return EncoderDecoderCache(
                DynamicCache(config=self.model.config), DynamicCache(config=self.model.config)
            )
        return DynamicCache(config=self.model.config)

    def _causal_step(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any, **kw: Any
    ) -> Any:
        """A causal LM's forward pass over `ids` at `positions`, extending `cache`."""
        return self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            **kw,
        )

    def _decoder_step(self, ids: torch.Tensor, cache: Any) -> Any:
        """An encoder-decoder's decoder pass over `ids` on the stored encoder states."""
        return self.model(
            encoder_outputs=self.encoder_out,
            attention_mask=self.enc_mask,
            decoder_input_ids=ids,
            cache=cache,
            use_cache=True,
        )

    def start(self) -> torch.Tensor:
        """Prefill / encode: log-probs (k, vocab) of the first answer token under each context."""
        import torch

        with self.lock, torch.no_grad():
            cache = self._new_cache()
            if self.seq2seq:
                assert self.start_id is not None
                encoder = self.model.get_encoder()
                self.encoder_out = encoder(
                    input_ids=self.prompt_ids, attention_mask=self.prompt_mask, return_dict=True
                )
                self.prompt_hidden = self.encoder_out.last_hidden_state
                self.enc_mask = self.prompt_mask
                start = torch.full(
                    (len(self.prompt_ids), 1), self.start_id, dtype=torch.long, device=self.device
                )
                out = self._decoder_step(start, cache)
            else:
                positions = (self.prompt_mask.cumsum(-1) - 1).masked_fill(self.prompt_mask == 0, 1)
                out = self._causal_step(
                    self.prompt_ids, self.prompt_mask, positions, cache, **self.keep_kwargs
                )
                self.mask = self.prompt_mask
                self.next_pos = positions[:, -1:] + 1
            self.cache = out.cache if getattr(out, "cache", None) is not None else cache
            logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
            if self.keep_prompt:
                self.first_logp = logp
                if not self.seq2seq:
                    self.prompt_cache = copy.deepcopy(self.cache)
        return logp

    def advance(self, tokens: Sequence[int]) -> torch.Tensor:
        """Append one token per row; log-probs (rows, vocab) of the token after it."""
        import torch

        step = torch.tensor(list(tokens), dtype=torch.long, device=self.device).view(-1, 1)
        with self.lock, torch.no_grad():
            if self.seq2seq:
                out = self._decoder_step(step, self.cache)
            else:
                self.mask = torch.cat([self.mask, self.mask.new_ones((len(step), 1))], dim=-1)
                out = self._causal_step(step, self.mask, self.next_pos, self.cache)
                self.next_pos = self.next_pos + 1
            if getattr(out, "cache", None) is not None:
                self.cache = out.cache
            return torch.log_softmax(out.logits[:, -1].float(), dim=-1)

    def select(self, rows: Sequence[int]) -> None:
        """Keep these rows, in this order (an index may repeat): cache, masks and positions."""
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        index = torch.tensor(list(rows), dtype=torch.long, device=self.device)
        self.cache.batch_select_indices(index)
        if self.seq2seq:
            hidden = self.encoder_out.last_hidden_state[index]
            self.encoder_out = BaseModelOutput(last_hidden_state=hidden)
            self.enc_mask = self.enc_mask[index]
        else:
            self.mask = self.mask[index]
            self.next_pos = self.next_pos[index]

    def score(self, pairs: Sequence[tuple[int, Sequence[int]]]) -> list[list[float]]:
        """log p(y_t | x_z, y<t) for each (passage z, continuation y): teacher forcing, batched.

        Causal LMs continue from a copy of the prompts' KV cache (kept by start()); seq2seq models
        rerun the decoder on the stored encoder states. Needs ``keep_prompt=True``.
        """
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        assert self.first_logp is not None, "score() needs keep_prompt=True and start()"
        results: list[list[float]] = []
        vocab = self.first_logp.shape[-1]
        longest = max((len(y) for _, y in pairs), default=1)
        group = max(1, _SCORE_FLOATS // max(1, longest * vocab))
        for begin in range(0, len(pairs), group):
            chunk = pairs[begin : begin + group]
            width = max(len(y) for _, y in chunk)
            zs = torch.tensor([z for z, _ in chunk], dtype=torch.long, device=self.device)
            targets = torch.full((len(chunk), width), self.pad, dtype=torch.long)
            for i, (_, y) in enumerate(chunk):
                targets[i, : len(y)] = torch.tensor(list(y), dtype=torch.long)
            targets = targets.to(self.device)
            with self.lock, torch.no_grad():
                if self.seq2seq:
                    assert self.start_id is not None
                    start = targets.new_full((len(chunk), 1), self.start_id)
                    out = self.model(
                        encoder_outputs=BaseModelOutput(last_hidden_state=self.prompt_hidden[zs]),
                        attention_mask=self.prompt_mask[zs],
                        decoder_input_ids=torch.cat([start, targets[:, :-1]], dim=-1),
                        use_cache=False,
                    )
                    logp = torch.log_softmax(out.logits.float(), dim=-1)
                else:
                    logp = self.first_logp[zs].unsqueeze(1)
                    if width > 1:
                        cache = copy.deepcopy(self.prompt_cache)
                        cache.batch_select_indices(zs)
                        prompt_mask = self.prompt_mask[zs]
                        mask = torch.cat(
                            [prompt_mask, prompt_mask.new_ones((len(chunk), width - 1))], -1
                        )
                        offsets = torch.arange(width - 1, device=self.device)
                        positions = prompt_mask.sum(-1, keepdim=True) + offsets
                        out = self._causal_step(targets[:, :-1], mask, positions, cache)
                        rest = torch.log_softmax(out.logits.float(), dim=-1)
                        logp = torch.cat([logp, rest], dim=1)
            token_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for i, (_, y) in enumerate(chunk):
                results.append(token_logp[i, : len(y)].tolist())
        return results
