"""The dimensions of a transformer with LoRA adapters, as the cost model needs them, and how to read
them from a Hugging Face config: a BERT-style encoder classifier (`encoder_shape`) or a decoder-only
causal LM (`decoder_shape`: llama, qwen2, mistral and gpt2 layouts).

The fields after `bytes_per_param` default to the BERT-style encoder (four h x h attention
projections, a two-matrix MLP, no LM head), so a shape built with the first nine fields alone is the
encoder's, costed exactly as before the decoder fields existed.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelShape:
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    vocab_size: int
    lora_targets: list[tuple[int, int]]   # (in_features, out_features) of each LoRA-wrapped linear in ONE layer
    head_params: int                      # trainable task head (encoder: (h + 1) x classes); 0 = none
    seq_len: int
    batch_size: int
    bytes_per_param: int = 4              # bytes of a value sent over the radio (adapters, split activations):
                                          # `fl.transfer_dtype` (costs.bits.with_transfer_dtype)
    frozen_linears: list[tuple[int, int]] | None = None  # (in, out) of every linear of ONE layer, LoRA-wrapped
                                          # or not; None = the encoder's 4 (h, h) + (h, I) + (I, h)
    attention_dim: int = 0                # num_heads x head_dim, the width of the queries; 0 = hidden_size
    kv_dim: int = 0                       # num_kv_heads x head_dim (grouped-query attention); 0 = attention_dim
    gated_mlp: bool = False               # gate, up and down projections (SwiGLU) instead of two matrices
    lm_head_size: int = 0                 # outputs of a frozen vocabulary projection (V); 0 = none
    lm_head_tokens: float = 0.0           # positions of a sequence the vocabulary projection runs on: the
                                          # answer tokens the loss scores (the model family counts them)
    base_params: int = 0                  # frozen parameters of the base model; 0 = estimated (costs.memory)
    compute_bytes: int = 4                # bytes of a frozen weight and of an activation on the device (bf16: 2)
    dropout: bool = True                  # training keeps dropout masks (BERT: p 0.1); decoder LLMs train without
    lora_target_names: list[str] | None = None  # peft names of `lora_targets`, in the same order (reports)


def layer_linears(shape: ModelShape) -> list[tuple[int, int]]:
    """(in, out) of every linear of one layer: `frozen_linears`, or the encoder's six."""
    if shape.frozen_linears is not None:
        return list(shape.frozen_linears)
    h, i = shape.hidden_size, shape.intermediate_size
    return [(h, h)] * 4 + [(h, i), (i, h)]


def query_dim(shape: ModelShape) -> int:
    return shape.attention_dim or shape.hidden_size


def key_value_dim(shape: ModelShape) -> int:
    return shape.kv_dim or query_dim(shape)


# ----------------------------------------------------------------------------- reading HF configs

def _get(cfg, name: str, default=None):
    """A field of a transformers config object or of a plain dict."""
    if isinstance(cfg, dict):
        return cfg.get(name, default)
    return getattr(cfg, name, default)


def _need(cfg, *names: str) -> int:
    """The first of `names` the config has (transformers' attribute_map aliases differ by model)."""
    for n in names:
        v = _get(cfg, n)
        if v is not None:
            return int(v)
    raise ValueError(f"model config has no {' / '.join(names)}")


def _targets(linears: list[tuple[str, int, int]], target_modules, model_type: str) -> tuple[list, list]:
    """(in, out) pairs and names of the linears a peft target list wraps; a name matching none of
    them is refused with the layer's names (peft matches the last part of a module's name)."""
    names = [n for n, _, _ in linears]
    missing = [t for t in target_modules if t not in names]
    if missing:
        raise ValueError(f"no linear layer named {', '.join(map(repr, missing))} in a {model_type} layer; "
                         f"its linear layers are: {', '.join(dict.fromkeys(names))}")
    chosen = [(n, a, b) for n, a, b in linears if n in set(target_modules)]
    return [(a, b) for _, a, b in chosen], [n for n, _, _ in chosen]


def encoder_shape(hf_config, target_modules, seq_len: int, batch_size: int, num_classes: int = 2) -> ModelShape:
    """A BERT-style encoder (BertModel: query, key, value, attention.output.dense, intermediate.dense,
    output.dense) with a mean-pooled linear head of `num_classes`; `base_params` counts embeddings
    (word, position, token type, layer norm), every layer's weights, biases and layer norms, and the pooler."""
    h, i = _need(hf_config, "hidden_size"), _need(hf_config, "intermediate_size")
    n, v = _need(hf_config, "num_hidden_layers"), _need(hf_config, "vocab_size")
    linears = [("query", h, h), ("key", h, h), ("value", h, h), ("dense", h, h), ("dense", h, i), ("dense", i, h)]
    targets, names = _targets(linears, target_modules, "bert")
    per_layer = sum(a * b + b for _, a, b in linears) + 2 * 2 * h            # weights + biases, 2 layer norms
    embeddings = (v + int(_get(hf_config, "max_position_embeddings", 512))
                  + int(_get(hf_config, "type_vocab_size", 2)) + 2) * h     # word, position, type, layer norm
    dropout = float(_get(hf_config, "hidden_dropout_prob", 0.0) or 0.0) > 0 or \
        float(_get(hf_config, "attention_probs_dropout_prob", 0.0) or 0.0) > 0
    return ModelShape(num_layers=n, hidden_size=h, intermediate_size=i, num_heads=_need(hf_config, "num_attention_heads"),
                      vocab_size=v, lora_targets=targets, head_params=(h + 1) * num_classes, seq_len=seq_len,
                      batch_size=batch_size, base_params=embeddings + n * per_layer + h * h + h, dropout=dropout,
                      lora_target_names=names)


#: Decoder layouts with llama's module names (q/k/v/o_proj, gate/up/down_proj); gpt2 is the other one.
LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3")


def _decoder_linears(cfg) -> tuple[str, list[tuple[str, int, int]], dict]:
    """Architecture, one layer's linears (peft name, in, out) and the other dimensions of a causal LM
    (a config without `model_type` is read as llama)."""
    model_type = str(_get(cfg, "model_type", "") or "llama")
    if model_type not in LLAMA_LIKE + ("gpt2",):
        raise ValueError(f"model type {model_type!r}: the cost model knows the {', '.join(LLAMA_LIKE)} and gpt2 "
                         "layouts")
    if model_type == "gpt2":
        h, n, a = _need(cfg, "n_embd", "hidden_size"), _need(cfg, "n_layer", "num_hidden_layers"), \
            _need(cfg, "n_head", "num_attention_heads")
        i = int(_get(cfg, "n_inner", None) or 4 * h)
        # Conv1D layers, named as peft targets them; both projections back to h are `c_proj`
        linears = [("c_attn", h, 3 * h), ("c_proj", h, h), ("c_fc", h, i), ("c_proj", i, h)]
        dims = dict(h=h, i=i, n=n, a=a, q=h, kv=h, gated=False, bias=True,
                    positions=_need(cfg, "n_positions", "max_position_embeddings"), norm=2)
        return model_type, linears, dims
    h, i = _need(cfg, "hidden_size"), _need(cfg, "intermediate_size")
    n, a = _need(cfg, "num_hidden_layers"), _need(cfg, "num_attention_heads")
    kv_heads = int(_get(cfg, "num_key_value_heads", None) or a)
    d = int(_get(cfg, "head_dim", None) or h // a)
    q, kv = a * d, kv_heads * d
    linears = [("q_proj", h, q), ("k_proj", h, kv), ("v_proj", h, kv), ("o_proj", q, h),
               ("gate_proj", h, i), ("up_proj", h, i), ("down_proj", i, h)]
    # qwen2 always has q/k/v biases; llama and mistral when attention_bias is set
    bias = model_type == "qwen2" or bool(_get(cfg, "attention_bias", False))
    return model_type, linears, dict(h=h, i=i, n=n, a=a, q=q, kv=kv, gated=True, bias=bias,
                                                positions=0, norm=1)


def decoder_shape(hf_config, target_modules, seq_len: int, batch_size: int, *, head_tokens: float,
                  bytes_per_param: int = 4, compute_bytes: int = 4) -> ModelShape:
    """A decoder-only causal LM from its transformers config (object or dict): llama / qwen2 / mistral
    (q/k/v/o_proj with grouped-query attention, gate/up/down_proj) or gpt2 (c_attn, c_proj, c_fc).

    The LM head (vocabulary projection, tied or not) is frozen; there is no trainable head. It runs
    on `head_tokens` positions of each sequence (0 <= head_tokens <= seq_len): those whose next
    token the loss scores, the answer tokens of a prompt task or the response tokens of an
    instruction task, as the causal LM family computes it (`CausalTask.head_tokens_per_row`); the
    decoder layers run on all `seq_len`. `base_params` counts embeddings (and gpt2's positions),
    every layer's weights, biases and norms, the final norm, and an untied LM head.
    `compute_bytes`: 4 fp32, 2 bf16/fp16.
    """
    if not 0 <= head_tokens <= seq_len:
        raise ValueError(f"head_tokens must be in 0..seq_len ({seq_len}), got {head_tokens}")
    model_type, linears, d = _decoder_linears(hf_config)
    targets, names = _targets(linears, target_modules, model_type)
    h, v = d["h"], _need(hf_config, "vocab_size")
    weights = sum(a * b for _, a, b in linears)
    if d["bias"]:  # gpt2: every linear; qwen2: q, k, v
        weights += sum(b for _, _, b in linears) if model_type == "gpt2" else d["q"] + 2 * d["kv"]
    norms = 2 * d["norm"] * h                      # two norms a layer (gpt2's LayerNorm has a bias)
    tied = _get(hf_config, "tie_word_embeddings", True)
    base = (v + d["positions"]) * h + d["n"] * (weights + norms) + d["norm"] * h + (0 if tied else v * h)
    dropout = any(float(_get(hf_config, k, 0.0) or 0.0) > 0
                  for k in ("attention_dropout", "resid_pdrop", "attn_pdrop", "embd_pdrop", "hidden_dropout"))
    return ModelShape(num_layers=d["n"], hidden_size=h, intermediate_size=d["i"], num_heads=d["a"], vocab_size=v,
                      lora_targets=targets, head_params=0, seq_len=seq_len, batch_size=batch_size,
                      bytes_per_param=bytes_per_param, frozen_linears=[(a, b) for _, a, b in linears],
                      attention_dim=d["q"], kv_dim=d["kv"], gated_mlp=d["gated"], lm_head_size=v,
                      lm_head_tokens=float(head_tokens), base_params=base,
                      compute_bytes=compute_bytes, dropout=dropout, lora_target_names=names)
