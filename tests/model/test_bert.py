"""model.bert: shapes after the original modeling_test, the numerics of docs/faithfulness.md
("Model"), the unpadded path, every head's outputs and losses, parity with HF transformers on the same weights."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from openbert.config import BertConfig
from openbert.model.bert import (BertForMultipleChoice, BertForPreTraining,
                                 BertForQuestionAnswering, BertForSequenceClassification,
                                 BertForTokenClassification, BertModel, attention_length, bucketed,
                                 gelu_erf, gelu_tanh, truncated_normal_)


def _inputs(batch=13, seq=7, vocab=99, seed=0, pad=True):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    mask = torch.randint(0, 2, (batch, seq), generator=g) if pad else torch.ones(batch, seq, dtype=torch.long)
    mask[:, 0] = 1
    segs = torch.randint(0, 2, (batch, seq), generator=g)
    return ids, mask, segs


def test_gelu_forms_match_spec():
    assert gelu_tanh(torch.tensor(1.0)).item() == pytest.approx(0.841192, abs=1e-6)
    assert gelu_erf(torch.tensor(1.0)).item() == pytest.approx(0.841345, abs=1e-6)


def test_output_shapes_of_the_original_modeling_test(tiny_config):
    model = BertModel(tiny_config).eval()
    ids, mask, segs = _inputs()
    out = model(ids, mask, segs)
    assert out.embedding_output.shape == (13, 7, 32)
    assert out.sequence_output.shape == (13, 7, 32)
    assert out.pooled_output.shape == (13, 32)
    assert len(out.all_encoder_layers) == 5 and all(h.shape == (13, 7, 32) for h in out.all_encoder_layers)
    assert torch.equal(out.all_encoder_layers[-1], out.sequence_output)


def _reference_forward(model: BertModel, ids, mask, segs):
    """docs/faithfulness.md, "Model" written out with plain ops and the fully padded layout."""
    c = model.config
    e = model.embeddings
    x = e.word_embeddings.weight[ids] + e.token_type_embeddings.weight[segs] + \
        e.position_embeddings.weight[:ids.shape[1]][None]
    ln = lambda t, m: F.layer_norm(t, (c.hidden_size,), m.weight, m.bias, 1e-12)  # noqa: E731
    x = ln(x, e.LayerNorm)
    bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
    bsz, seq = ids.shape
    heads = lambda t: t.view(bsz, seq, c.num_attention_heads, -1).transpose(1, 2)  # noqa: E731
    state = model.state_dict()  # the original names: query / key / value
    for i, layer in enumerate(model.encoder.layer):
        proj = lambda t, n: F.linear(t, state[f"encoder.layer.{i}.attention.self.{n}.weight"],  # noqa: E731
                                     state[f"encoder.layer.{i}.attention.self.{n}.bias"])
        q, k, v = heads(proj(x, "query")), heads(proj(x, "key")), heads(proj(x, "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c.head_size) + bias, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(bsz, seq, c.hidden_size)
        a = ln(x + layer.attention.output.dense(ctx), layer.attention.output.LayerNorm)
        inter = F.linear(a, layer.intermediate.dense.weight, layer.intermediate.dense.bias)
        inter = 0.5 * inter * (1 + torch.tanh(math.sqrt(2 / math.pi) * (inter + 0.044715 * inter ** 3)))
        x = ln(a + layer.output.dense(inter), layer.output.LayerNorm)
    return x, torch.tanh(model.pooler.dense(x[:, 0]))


@pytest.mark.parametrize("pad", [True, False])  # without padding the encoder runs unmasked
def test_numerics_match_a_plain_reference(tiny_config, pad):
    torch.manual_seed(0)
    model = BertModel(tiny_config).eval()
    ids, mask, segs = _inputs(pad=pad)
    with torch.no_grad():
        out = model(ids, mask, segs)
        seq, pooled = _reference_forward(model, ids, mask, segs)
    real = mask.bool()
    torch.testing.assert_close(out.sequence_output[real], seq[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.pooled_output, pooled, atol=1e-5, rtol=0)


def test_unpadded_path_equals_padded_path_on_real_tokens(tiny_config):
    torch.manual_seed(0)
    model = BertModel(tiny_config).eval()
    ids, mask, segs = _inputs()
    with torch.no_grad():
        unpadded = model(ids, mask, segs)
        model.unpad = False
        padded = model(ids, mask, segs)
    real = mask.bool()
    for a, b in zip(unpadded.all_encoder_layers, padded.all_encoder_layers):
        torch.testing.assert_close(a[real], b[real], atol=1e-6, rtol=0)
    assert torch.all(unpadded.sequence_output[~real] == 0)
    torch.testing.assert_close(unpadded.pooled_output, padded.pooled_output, atol=1e-6, rtol=0)


def test_bucketed_row_counts_cover_t_with_little_waste_and_repeat():
    sizes = [bucketed(t) for t in range(1, 5000)]
    assert all(t <= r <= t + max(8, t / 16) for t, r in zip(range(1, 5000), sizes))
    assert len(set(sizes)) <= 16 * 13 // 2  # 16 per power of two past 128, fewer below


def test_inference_rounds_the_unpadded_rows_up_and_drops_the_extra_ones(tiny_config, monkeypatch):
    torch.manual_seed(0)
    model = BertModel(tiny_config).eval()
    ids, mask, segs = _inputs()
    real = mask.bool()
    rows = []
    monkeypatch.setattr(model.encoder.layer[0], "forward",
                        lambda x, *a, f=model.encoder.layer[0].forward: rows.append(len(x)) or f(x, *a))
    with torch.no_grad():
        bucketed_out = model(ids, mask, segs)
    exact = model(ids, mask, segs)  # with autograd: exactly the T real rows
    assert rows == [bucketed(int(real.sum())), int(real.sum())] and rows[0] > rows[1]
    for a, b in zip(bucketed_out.all_encoder_layers, exact.all_encoder_layers):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b.detach(), atol=1e-6, rtol=0)
    assert torch.all(bucketed_out.sequence_output[~real] == 0)


def test_attention_length_rounds_to_whole_blocks_of_16():
    assert [attention_length(s) for s in (1, 7, 9, 16, 17, 19, 20, 28, 32, 33, 36, 120, 128)] == \
        [16, 16, 16, 16, 17, 19, 32, 32, 32, 33, 48, 128, 128]


@pytest.mark.parametrize("pad", [True, False])
def test_cpu_inference_runs_attention_at_the_rounded_length(tiny_config, monkeypatch, pad):
    """Padded or not, a batch of length 7 is attended at length 16 at inference (the extra keys
    masked, the extra queries dropped) and gives the padded path's numbers; with autograd, at 7."""
    import openbert.model.bert as bert_module

    torch.manual_seed(0)
    model = BertModel(tiny_config).eval()
    ids, mask, segs = _inputs(pad=pad)
    lengths, sdpa = [], F.scaled_dot_product_attention
    monkeypatch.setattr(bert_module.F, "scaled_dot_product_attention",
                        lambda q, *a, **k: lengths.append(q.shape[2]) or sdpa(q, *a, **k))
    with torch.no_grad():
        out = model(ids, mask, segs)
        model.unpad = False
        padded = model(ids, mask, segs)
    model.unpad = True
    trained = model(ids, mask, segs)
    n = tiny_config.num_hidden_layers
    assert lengths == [16] * n + [7] * n + [7] * n
    real = mask.bool()
    torch.testing.assert_close(out.sequence_output[real], padded.sequence_output[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(trained.sequence_output.detach()[real], padded.sequence_output[real],
                               atol=1e-5, rtol=0)


def test_token_rows_and_layers_padded_back_only_when_read(tiny_config, monkeypatch):
    from openbert.model.bert import _Unpadding
    torch.manual_seed(0)
    model = BertModel(tiny_config).eval()
    ids, mask, segs = _inputs()
    real = mask.bool()
    pads = []
    pad = _Unpadding.pad
    monkeypatch.setattr(_Unpadding, "pad", lambda self, x: pads.append(1) or pad(self, x))
    with torch.no_grad():
        out = model(ids, mask, segs)
        model.unpad = False
        padded = model(ids, mask, segs)
    assert len(pads) == 1  # sequence_output
    rows = out.token_rows(1, mask)
    assert len(pads) == 1 and rows.shape == (int(real.sum()), tiny_config.hidden_size)
    torch.testing.assert_close(rows, padded.token_rows(1, mask), atol=1e-6, rtol=0)
    torch.testing.assert_close(rows, padded.all_encoder_layers[1][real], atol=1e-6, rtol=0)
    layers = out.all_encoder_layers
    assert layers[-1] is out.sequence_output and len(pads) == 1
    torch.testing.assert_close(layers[1][real], rows, atol=0, rtol=0)
    assert layers[1] is layers[-tiny_config.num_hidden_layers + 1] and len(pads) == 2
    assert len(layers[1:3]) == 2 and len(list(layers)) == tiny_config.num_hidden_layers
    with pytest.raises(IndexError):
        layers[tiny_config.num_hidden_layers]


def test_sequence_longer_than_the_position_table_is_a_clear_error(tiny_config):
    from openbert.errors import OpenBertError

    with pytest.raises(OpenBertError, match="max_position_embeddings 64"):
        BertModel(tiny_config)(torch.zeros(1, 65, dtype=torch.long))


def test_dropout_follows_train_and_eval(tiny_config):
    torch.manual_seed(0)
    model = BertModel(tiny_config)
    ids, mask, segs = _inputs(pad=False)
    model.train()
    a, b = model(ids, mask, segs).sequence_output, model(ids, mask, segs).sequence_output
    assert not torch.equal(a, b)
    model.eval()
    assert torch.equal(model(ids, mask, segs).sequence_output, model(ids, mask, segs).sequence_output)


def test_fused_qkv_keeps_the_original_names_in_the_state_dict(tiny_config):
    torch.manual_seed(0)
    model = BertModel(tiny_config)
    state = model.state_dict()
    prefix = "encoder.layer.2.attention.self."
    assert [k for k in state if k.startswith(prefix)] == [
        prefix + f"{part}.{leaf}" for part in ("query", "key", "value") for leaf in ("weight", "bias")]
    assert not any(".qkv." in k for k in state)
    fused = model.encoder.layer[2].attention.self.qkv
    torch.testing.assert_close(state[prefix + "key.weight"], fused.weight[32:64], atol=0, rtol=0)
    # loading joins the three again, in order
    other = BertModel(tiny_config)
    other.load_state_dict(state)
    assert torch.equal(other.encoder.layer[2].attention.self.qkv.weight, fused.weight)
    assert torch.equal(other.encoder.layer[2].attention.self.qkv.bias, fused.bias)


def test_weight_updates_take_effect_at_inference(tiny_config):
    torch.manual_seed(0)
    model = BertModel(tiny_config).eval()
    ids, mask, segs = _inputs()
    with torch.no_grad():
        first = model(ids, mask, segs).sequence_output
        model.encoder.layer[2].attention.self.qkv.weight[32:64].mul_(1.5)  # the key rows, in place
        second = model(ids, mask, segs).sequence_output
        ref, _ = _reference_forward(model, ids, mask, segs)
    assert not torch.allclose(first, second)
    real = mask.bool()
    torch.testing.assert_close(second[real], ref[real], atol=1e-5, rtol=0)


def test_a_head_initialises_each_parameter_once(tiny_config, monkeypatch):
    import openbert.model.bert as modeling

    filled = []
    real = modeling.truncated_normal_
    monkeypatch.setattr(modeling, "truncated_normal_", lambda t, std: filled.append(t) or real(t, std))
    model = BertForPreTraining(tiny_config)
    weights = [p for n, p in model.named_parameters() if n.endswith("weight") and "LayerNorm" not in n]
    assert len(filled) == len(weights) and {id(t) for t in filled} == {id(p) for p in weights}


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config):
    ids, mask, segs = _inputs()
    grads = []
    for enabled in (False, True):
        torch.manual_seed(0)
        model = BertModel(tiny_config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
        model.set_gradient_checkpointing(enabled)
        model(ids, mask, segs).sequence_output.pow(2).sum().backward()
        grads.append(model.encoder.layer[0].attention.self.qkv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_truncated_normal_init():
    t = truncated_normal_(torch.empty(200_000), 0.02)
    assert t.abs().max() <= 0.04
    assert t.std().item() == pytest.approx(0.02 * 0.8796, rel=0.02)  # std of N(0,1) cut at +-2


# ---- heads ------------------------------------------------------------------------------------
def test_pretraining_head_gathers_positions_and_weights_its_loss(tiny_config):
    torch.manual_seed(0)
    model = BertForPreTraining(tiny_config).eval()
    ids, mask, segs = _inputs()
    positions = torch.tensor([[1, 2, 0]] * 13)
    lm_ids = torch.randint(0, 99, (13, 3))
    weights = torch.tensor([[1.0, 1.0, 0.0]] * 13)
    nsp = torch.randint(0, 2, (13,))
    out = model(ids, mask, segs, masked_lm_positions=positions, masked_lm_ids=lm_ids,
                masked_lm_weights=weights, next_sentence_labels=nsp)
    assert out.masked_lm_logits.shape == (13, 3, 99) and out.next_sentence_logits.shape == (13, 2)
    full = model(ids, mask, segs).masked_lm_logits  # [B, S, V] on every position
    torch.testing.assert_close(out.masked_lm_logits[:, 1], full[:, 2], atol=1e-5, rtol=0)
    nll = -torch.log_softmax(out.masked_lm_logits, -1).gather(-1, lm_ids[..., None])[..., 0]
    expected_lm = (nll * weights).sum() / (weights.sum() + 1e-5)
    torch.testing.assert_close(out.masked_lm_loss, expected_lm)
    torch.testing.assert_close(out.loss, expected_lm + F.cross_entropy(out.next_sentence_logits, nsp))
    # the decoder is tied to the input embeddings
    emb = model.bert.embeddings.word_embeddings.weight
    h = model.cls.predictions.transform(out.sequence_output[:, 1])
    torch.testing.assert_close(full[:, 1], h @ emb.t() + model.cls.predictions.bias, atol=1e-5, rtol=0)


def test_task_heads_shapes_and_losses(tiny_config):
    torch.manual_seed(0)
    ids, mask, segs = _inputs()
    clf = BertForSequenceClassification(tiny_config, num_labels=3).eval()
    out = clf(ids, mask, segs, labels=torch.arange(13) % 3)
    assert out.logits.shape == (13, 3)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, torch.arange(13) % 3))
    reg = BertForSequenceClassification(tiny_config, num_labels=1).eval()
    target = torch.linspace(0, 5, 13)
    out = reg(ids, mask, segs, labels=target)
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits[:, 0], target))
    qa = BertForQuestionAnswering(tiny_config).eval()
    start, end = torch.zeros(13, dtype=torch.long), torch.full((13,), 3)
    out = qa(ids, mask, segs, start_positions=start, end_positions=end)
    assert out.start_logits.shape == (13, 7) and out.end_logits.shape == (13, 7)
    torch.testing.assert_close(out.loss, (F.cross_entropy(out.start_logits, start)
                                          + F.cross_entropy(out.end_logits, end)) / 2)
    tok = BertForTokenClassification(tiny_config, num_labels=5).eval()
    labels = torch.randint(0, 5, (13, 7))
    labels[~mask.bool()] = -100
    out = tok(ids, mask, segs, labels=labels)
    assert out.logits.shape == (13, 7, 5)
    keep = labels != -100
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits[keep], labels[keep]))
    mc = BertForMultipleChoice(tiny_config).eval()
    out = mc(ids.view(13, 1, 7).expand(13, 4, 7), mask.view(13, 1, 7).expand(13, 4, 7),
             segs.view(13, 1, 7).expand(13, 4, 7), labels=torch.zeros(13, dtype=torch.long))
    assert out.logits.shape == (13, 4)


@pytest.mark.parametrize("ours_cls,hf_name,kwargs", [
    (BertForSequenceClassification, "BertForSequenceClassification", {"num_labels": 3}),
    (BertForQuestionAnswering, "BertForQuestionAnswering", {}),
    (BertForTokenClassification, "BertForTokenClassification", {"num_labels": 4}),
])
def test_heads_match_transformers_on_the_same_weights(tiny_config, tmp_path, ours_cls, hf_name, kwargs):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ours = ours_cls(tiny_config.replace(gelu_form="erf"), **kwargs).eval()
    ours.save_pretrained(tmp_path)
    hf = getattr(transformers, hf_name).from_pretrained(tmp_path).eval()
    ids, mask, segs = _inputs()
    with torch.no_grad():
        o = ours(ids, mask, segs)
        h = hf(input_ids=ids, attention_mask=mask, token_type_ids=segs)
    if o.logits.dim() == 3 and ours_cls is BertForTokenClassification:
        real = mask.bool()
        torch.testing.assert_close(o.logits[real], h.logits[real], atol=1e-5, rtol=0)
    elif ours_cls is BertForQuestionAnswering:
        real = mask.bool()
        torch.testing.assert_close(o.start_logits[real], h.start_logits[real], atol=1e-5, rtol=0)
        torch.testing.assert_close(o.end_logits[real], h.end_logits[real], atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(o.logits, h.logits, atol=1e-5, rtol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_forward_on_cuda_matches_fp32(dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, type_vocab_size=2)
    torch.manual_seed(0)
    model = BertModel(config).cuda().eval()
    ids, mask, segs = (t.cuda() for t in _inputs(batch=16, seq=128, vocab=30522))
    with torch.no_grad():
        ref = model(ids, mask, segs)
        with torch.autocast("cuda", dtype=dtype):
            half = model(ids, mask, segs)
        model_half = BertModel(config).cuda().to(dtype).eval()
        model_half.load_state_dict(model.state_dict())
        cast = model_half(ids, mask, segs)
        # what --precision does for inference: dense layers cast, embeddings and LayerNorm float32
        dense_cast = BertModel(config).cuda().eval()
        dense_cast.load_state_dict(model.state_dict())
        dense_cast = dense_cast.to_inference_dtype(dtype)(ids, mask, segs)
    real = mask.bool()
    assert dense_cast.sequence_output.dtype == torch.float32  # the residual stream stays float32
    for out in (half, cast, dense_cast):
        diff = (out.sequence_output.float() - ref.sequence_output)[real]
        assert diff.abs().mean() < 0.03 and diff.abs().max() < 0.5
        assert (out.pooled_output.float() - ref.pooled_output).abs().max() < 0.1


def test_loss_terms_sum_to_the_loss_and_carry_the_weights_of_loss_weights(tiny_config):
    """Every head records its loss terms with the weight each is normalised by; ``loss_weights``
    gives the same weights from the labels alone."""
    torch.manual_seed(0)
    ids = torch.randint(1, 99, (3, 8))
    token_labels = torch.tensor([[0, 1, -100, -100, 2, -100, -100, -100]] * 3)
    cases = [
        (BertForPreTraining(tiny_config), dict(
            masked_lm_positions=torch.tensor([[1, 2, 0]] * 3), masked_lm_ids=torch.tensor([[5, 6, 0]] * 3),
            masked_lm_weights=torch.tensor([[1.0, 1.0, 0.0]] * 3), next_sentence_labels=torch.tensor([0, 1, 0])),
         {"masked_lm": 6.0, "next_sentence": 3.0}),
        (BertForSequenceClassification(tiny_config, num_labels=2), dict(labels=torch.tensor([0, 1, 1])),
         {"classification": 3.0}),
        (BertForQuestionAnswering(tiny_config), dict(start_positions=torch.tensor([1, 2, 3]),
                                                     end_positions=torch.tensor([2, 3, 4])), {"span": 3.0}),
        (BertForTokenClassification(tiny_config, num_labels=3), dict(labels=token_labels),
         {"token_classification": 9.0}),
    ]
    for model, labels, want in cases:
        out = model(ids, **labels)
        assert {k: float(t.weight) for k, t in out.loss_terms.items()} == want, type(model).__name__
        assert {k: float(w) for k, w in model.loss_weights(**labels).items()} == want
        torch.testing.assert_close(out.loss, sum(t.value for t in out.loss_terms.values()))
    mc = BertForMultipleChoice(tiny_config)
    out = mc(ids.view(3, 1, 8).expand(3, 2, 8), labels=torch.tensor([0, 1, 1]))
    assert float(out.loss_terms["multiple_choice"].weight) == 3.0
    assert BertModel(tiny_config).loss_weights(labels=torch.tensor([1])) == {}


# ---- inference dtype and torch.compile ----------------------------------------------------------
def test_bf16_inference_cast_keeps_embeddings_layernorm_and_the_residual_stream_in_float32(tiny_config):
    torch.manual_seed(0)
    model = BertForPreTraining(tiny_config).eval()
    ids, mask, segs = _inputs()
    with torch.no_grad():
        ref = model(ids, mask, segs)
        model.to_inference_dtype(torch.bfloat16)
        out = model(ids, mask, segs)
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert dtypes["bert.encoder.layer.0.attention.self.qkv.weight"] == torch.bfloat16
    assert dtypes["bert.pooler.dense.bias"] == torch.bfloat16
    assert dtypes["bert.embeddings.word_embeddings.weight"] == torch.float32
    assert dtypes["bert.encoder.layer.0.output.LayerNorm.weight"] == torch.float32
    assert dtypes["cls.predictions.bias"] == torch.float32
    assert out.embedding_output.dtype == torch.float32 and out.sequence_output.dtype == torch.float32
    assert all(layer.dtype == torch.float32 for layer in out.all_encoder_layers)
    assert out.pooled_output.dtype == torch.bfloat16  # the pooler's product, rounded once
    assert out.masked_lm_logits.dtype == torch.float32  # the tied decoder stays float32
    real = mask.bool()
    diff = (out.sequence_output.float() - ref.sequence_output)[real].abs()
    assert diff.max() < 0.1 and diff.mean() < 0.02
    assert (out.masked_lm_logits - ref.masked_lm_logits).abs().max() < 0.1


def _compiled_matches_eager(model, ids, mask, segs, atol, **options):
    with torch.no_grad():
        eager = model(ids, mask, segs)
        compiled = torch.compile(model, options=options)(ids, mask, segs)
    real = mask.bool()
    torch.testing.assert_close(compiled.sequence_output[real].float(), eager.sequence_output[real].float(),
                               atol=atol, rtol=0)
    # a bf16 result (the pooler's product of a cast model) may differ by its last bit: the two
    # products sum in different orders before the one rounding to bf16
    rtol = 2 ** -7 if eager.pooled_output.dtype == torch.bfloat16 else 0
    torch.testing.assert_close(compiled.pooled_output.float(), eager.pooled_output.float(), atol=atol, rtol=rtol)


def test_compiled_model_takes_new_batch_shapes_without_recompiling(tiny_config):
    """Inference over new text: other batch sizes, lengths and real-token counts (one of them a
    count the row rounding leaves as it is) reuse the first compiled graphs."""
    import torch._dynamo

    torch.manual_seed(0)
    model = BertModel(tiny_config.replace(num_hidden_layers=1)).eval()
    compiled = torch.compile(model, dynamic=True)
    exact = _inputs(batch=2, seq=9, seed=2)
    exact[1][:] = 1
    exact[1][:, -1] = 0  # 16 real tokens, padding in each row: bucketed(16) == 16, no row added
    batches = [_inputs(batch=b, seq=s, seed=3 + i) for i, (b, s) in enumerate([(5, 9), (3, 12), (7, 10)])]
    with torch.no_grad():
        compiled(*_inputs(batch=4, seq=11))  # the first graphs; a second batch of other sizes
        compiled(*_inputs(batch=6, seq=13, seed=1))  # makes every size dynamic
        with torch._dynamo.config.patch(error_on_recompile=True):
            for inputs in batches + [exact]:
                torch.testing.assert_close(compiled(*inputs).sequence_output, model(*inputs).sequence_output,
                                           atol=1e-4, rtol=0)


def test_torch_compile_matches_eager_fp32(tiny_config):
    torch.manual_seed(0)
    model = BertModel(tiny_config.replace(num_hidden_layers=1)).eval()
    _compiled_matches_eager(model, *_inputs(batch=3), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("cast", [True, False], ids=["bf16-weights", "bf16-autocast"])
def test_torch_compile_matches_eager_bf16(tiny_config, cast):
    torch.manual_seed(0)
    model = BertModel(tiny_config.replace(num_hidden_layers=2)).eval()
    inputs = _inputs(batch=3)
    if cast:
        model.to_inference_dtype(torch.bfloat16)
        _compiled_matches_eager(model, *inputs, atol=1e-4, emulate_precision_casts=True)
        _compiled_matches_eager(model, *inputs, atol=0.05)  # default options: bf16 rounding apart
    else:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _compiled_matches_eager(model, *inputs, atol=1e-4, emulate_precision_casts=True)
