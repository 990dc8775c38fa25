"""Family `causal_lm`: a decoder-only language model (transformers' *ForCausalLM) trained on answers.

The offline default is `fl.model: smollm2` (SmolLM2-135M-Instruct, see `causal_load`); any
Hugging Face causal LM id or local folder works online. LoRA goes on the decoder's linear layers
with peft's names (defaults per architecture below; the output layer is never adapted). Tasks are
prompts (`causal_task`, `prompts`): the loss is the mean cross entropy of the answer tokens; a
task state holds the LoRA factors alone (no head: the answer is read from the LM's own output
layer, which stays frozen).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from iovsim.fl.families import causal_load, tree_rows
from iovsim.fl.families.causal_task import CAUSAL_EVALS, CausalTask, answer_index, head_positions
from iovsim.fl.families.lora import LoraModel, ModelError, is_adaptable, pick_device, quiet_transformers
from iovsim.fl.families.scores import TokenOutputs

NAME = "causal_lm"
_LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_TARGETS = {
    "llama": _LLAMA_LIKE, "mistral": _LLAMA_LIKE, "qwen2": _LLAMA_LIKE, "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE, "gemma2": _LLAMA_LIKE, "olmo": _LLAMA_LIKE, "olmo2": _LLAMA_LIKE,
    "gpt2": ("c_attn", "c_proj", "c_fc"),    # transformers' Conv1D layers (weights stored in x out)
}
"""`fl.target_modules` when empty, by `config.model_type`: attention and MLP projections, as peft
names them. Other architectures: every linear layer of the decoder."""
TREE_MODEL_TYPES = {"llama", "mistral", "qwen2", "qwen3", "olmo", "olmo2", "gpt2"}
"""Architectures whose decoder takes a 4D attention mask and explicit position ids as given (llama and
gpt2 tested, the others are llama's layers under other names): likelihood scoring runs one tree row per
example on them, and one row per label word elsewhere (`CausalTask.choice_layout`)."""


def claims_name(name: str) -> bool:
    return name in causal_load.SMOLLM2_NAMES or str(name).endswith(".gguf")


def claims_config(hf_config) -> bool:
    return causal_load.is_causal(hf_config)


def default_targets(model_type: str, decoder) -> list[str]:
    if model_type in DEFAULT_TARGETS:
        return list(DEFAULT_TARGETS[model_type])
    return sorted({n.split(".")[-1] for n, m in decoder.named_modules() if n and is_adaptable(m)})


class CausalLM(LoraModel):
    """Frozen causal LM + LoRA adapters by rank; answers scored through its own (frozen) output layer."""

    family = NAME
    extra_keys = ()

    def __init__(self, model_name: str, target_modules: list[str], lora_alpha: float, device: str = "cpu",
                 threads: int = 0, causal_eval: str = "likelihood", **options):
        if causal_eval not in CAUSAL_EVALS:
            raise ModelError(f"expected one of {', '.join(CAUSAL_EVALS)}, got {causal_eval!r}", field="causal_eval")
        quiet_transformers(threads)
        self.tokenizer, base = causal_load.load_causal(model_name)
        self.decoder = base.base_model  # the transformer below the output layer (LlamaModel, GPT2Model, ...)
        targets = list(target_modules) or default_targets(base.config.model_type, self.decoder)
        super().__init__(base, targets, lora_alpha, pick_device(device), model_name, scope=self.decoder)
        self.causal_eval = causal_eval
        self.choice_layout = "tree" if base.config.model_type in TREE_MODEL_TYPES else "rows"
        self.output_layer = base.get_output_embeddings()

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    def shape(self, seq_len: int, batch_size: int, num_classes: int = 0, task: CausalTask | None = None):
        """The decoder's dimensions for the cost model (`costs.shape.decoder_shape`: GQA, MLP width, the
        frozen LM head at `task`'s answer positions, as `outputs` applies it; no trainable head). An
        architecture it does not know gets the generic shape from the adapted layers' real dimensions."""
        from iovsim.costs import ModelShape
        from iovsim.costs.shape import decoder_shape

        if task is None:
            raise ValueError("a causal LM's cost shape needs its task: the LM head runs on the answer tokens")
        head_tokens = min(task.head_tokens_per_row(), float(seq_len))
        try:
            return decoder_shape(self.config, self.target_modules, seq_len, batch_size, head_tokens=head_tokens)
        except (ValueError, KeyError, TypeError):
            pass
        c = self.config
        return ModelShape(num_layers=self.num_layers, hidden_size=int(c.hidden_size),
                          intermediate_size=int(getattr(c, "intermediate_size", None) or 4 * c.hidden_size),
                          num_heads=int(c.num_attention_heads), vocab_size=int(c.vocab_size),
                          lora_targets=self.layer0_dims(), head_params=0, seq_len=seq_len, batch_size=batch_size,
                          lm_head_size=int(c.vocab_size), lm_head_tokens=head_tokens)

    def init_state(self, rank: int, num_classes: int, generator: torch.Generator) -> dict:
        """A fresh adapter: A Kaiming-uniform (as peft), B zero (`num_classes` has no use: no head)."""
        return self.lora_init(rank, generator)

    def make_task(self, data, max_length: int, dynamic_padding: bool = True) -> CausalTask:
        return CausalTask(self, data, max_length, self.causal_eval, dynamic_padding)

    # ---------------------------------------------------------------- the sequential executor
    def load(self, state: dict, rank: int):
        return None, self.load_lora(state, rank)

    @staticmethod
    def head_parameters(head) -> list:
        return []

    def export(self, rank: int, head, delta_from: dict | None = None) -> dict:
        return self.export_lora(rank, delta_from)

    def outputs(self, head, hidden: torch.Tensor, y: torch.Tensor) -> TokenOutputs:
        """Logits of the answer tokens only: position t predicts token t+1 where that one is labelled
        (`head_positions`; the cost model charges the LM head for these positions alone)."""
        pos = head_positions(y)
        h = hidden[:, :-1][pos]
        w = self.output_layer.weight
        bias = getattr(self.output_layer, "bias", None)
        logits = F.linear(h.float(), w.float(), None if bias is None else bias.float())
        return TokenOutputs(logits, y[:, 1:][pos], pos.nonzero()[:, 0], int(y.shape[0]), answer_index(pos))

    # ---------------------------------------------------------------- the batched executor
    @staticmethod
    def slot_head(state: dict, leaf) -> list:
        return []

    def slot_outputs(self, head: list, hidden: torch.Tensor, y: torch.Tensor) -> TokenOutputs:
        return self.outputs(None, hidden, y)

    @staticmethod
    def export_head(head: list) -> dict:
        return {}

    # ---------------------------------------------------------------- both
    def features(self, batch: dict) -> torch.Tensor:
        """The decoder's last hidden state (the output layer is applied at the answer positions only).
        A mask with branches (tree rows of likelihood scoring, `tree_rows`) becomes the 4D mask and
        the position ids that keep each branch apart from the others."""
        mask = batch["attention_mask"]
        if not tree_rows.has_branches(mask):
            return self.decoder(input_ids=batch["input_ids"], attention_mask=mask, use_cache=False).last_hidden_state
        mask4d, positions = tree_rows.attention(mask, self.config._attn_implementation, self.base.dtype)
        return self.decoder(input_ids=batch["input_ids"], attention_mask=mask4d, position_ids=positions,
                            use_cache=False).last_hidden_state

    @staticmethod
    def loss(out: TokenOutputs, y) -> torch.Tensor:
        """Mean cross entropy over the answer tokens of the batch."""
        return F.cross_entropy(out.logits, out.targets)


Family = CausalLM
