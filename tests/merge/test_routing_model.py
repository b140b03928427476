"""The routed model in memory: same logits as the path written out by hand, with and
without the cache, on padded batches; parameters shared, sources untouched."""

import copy

import pytest
import torch
from routing_support import (
    LAYERS,
    assert_same_outputs,
    greedy,
    hand_loop,
    padded_batch,
    positions,
    routed_recipe,
)
from transformers import LlamaForCausalLM

from evomerge.errors import ConfigError
from evomerge.merge.routed_layers import own_copy
from evomerge.merge.routed_model import build_routed, load_sources
from evomerge.merge.routing import check_layers
from evomerge.testing.random_models import save_random_llama


def test_logits_equal_the_hand_written_layer_loop_on_a_padded_batch(routing_pair):
    a, b, sources = routing_pair
    recipe = routed_recipe(a, b)
    model = build_routed(recipe, sources)
    ids, mask = padded_batch(model.config.vocab_size)
    with torch.no_grad():
        got = model(ids, attention_mask=mask, position_ids=positions(mask)).logits
        want = hand_loop(sources, recipe, ids, mask)
    real = mask.bool()  # padded query rows attend to nothing: their values mean nothing
    torch.testing.assert_close(got[real], want[real], rtol=1e-5, atol=1e-5)
    # the scales matter: without them the result differs
    plain = build_routed(routed_recipe(a, b, scales=False), sources)
    with torch.no_grad():
        unscaled = plain(ids, attention_mask=mask, position_ids=positions(mask)).logits
    assert (unscaled[real] - got[real]).abs().max() > 1e-2


def test_decoding_with_the_cache_gives_the_logits_of_the_whole_sequence(routing_pair):
    a, b, sources = routing_pair
    model = build_routed(routed_recipe(a, b), sources)
    ids, mask = padded_batch(model.config.vocab_size, seed=1)
    with torch.no_grad():
        whole = model(ids, attention_mask=mask, position_ids=positions(mask)).logits
        out = model(ids[:, :5], attention_mask=mask[:, :5],
                    position_ids=positions(mask)[:, :5], use_cache=True)
        cache = out.past_key_values
        assert len(cache.layers) == len(model.model.layers) == 5  # a slot per hop
        steps = [out.logits[:, -1]]
        for t in range(5, ids.shape[1]):
            out = model(ids[:, t:t + 1], attention_mask=mask[:, :t + 1],
                        position_ids=positions(mask)[:, t:t + 1], cache=cache,
                        use_cache=True)
            steps.append(out.logits[:, -1])
    torch.testing.assert_close(torch.stack(steps, 1), whole[:, 4:], rtol=1e-5, atol=1e-5)


def test_generate_gives_the_same_tokens_with_and_without_the_cache(routing_pair):
    a, b, sources = routing_pair
    model = build_routed(routed_recipe(a, b), sources)
    ids, mask = padded_batch(model.config.vocab_size, seed=2)
    with torch.no_grad():
        cached = model.generate(ids, use_cache=True, **greedy(mask, 8))
        uncached = model.generate(ids, use_cache=False, **greedy(mask, 8))
    assert cached.shape == (2, ids.shape[1] + 8)
    assert torch.equal(cached, uncached)


def test_an_unscaled_path_is_the_standard_model_with_its_layers_stacked(routing_pair):
    """All scales 1: exactly a plain Llama whose layers are copies in path order."""
    a, b, sources = routing_pair
    recipe = routed_recipe(a, b, scales=False)
    model = build_routed(recipe, sources)
    config = copy.deepcopy(sources[a].config)
    config.num_hidden_layers = len(recipe.routing.path)
    stacked = LlamaForCausalLM(config).eval()
    state = {n: t for n, t in sources[a].state_dict().items() if ".layers." not in n}
    for i, hop in enumerate(recipe.routing.path):
        for name, t in sources[hop.model].model.layers[hop.layer].state_dict().items():
            state[f"model.layers.{i}.{name}"] = t.clone()
    stacked.load_state_dict(state)
    assert_same_outputs(model, stacked, seed=3)


def test_hops_share_parameters_and_leave_the_sources_as_they_were(routing_pair):
    a, b, sources = routing_pair
    ids = torch.randint(3, 50, (1, 6))
    with torch.no_grad():
        before = {m: sources[m](ids).logits for m in (a, b)}
    model = build_routed(routed_recipe(a, b), sources)
    hops = model.model.layers
    # b's layer 1 is visited twice: one set of weights, two cache slots
    assert hops[1].layer.mlp is hops[2].layer.mlp is sources[b].model.layers[1].mlp
    assert hops[1].layer.self_attn.q_proj is sources[b].model.layers[1].self_attn.q_proj
    assert [h.layer.self_attn.layer_idx for h in hops] == [0, 1, 2, 3, 4]
    assert list(model.parameters()) == [sources[a].model.embed_tokens.weight,
                                        sources[a].model.norm.weight,
                                        sources[a].lm_head.weight]
    with torch.no_grad():
        model.generate(ids, max_new_tokens=3, do_sample=False)
    for m in (a, b):
        assert len(sources[m].model.layers) == sources[m].config.num_hidden_layers == LAYERS
        assert [layer.self_attn.layer_idx for layer in sources[m].model.layers] == [0, 1, 2]
        with torch.no_grad():
            assert torch.equal(sources[m](ids).logits, before[m])


def test_a_plain_shallow_copy_would_have_changed_the_source():
    """The trap own_copy avoids: copy.copy shares the submodule table."""
    layer = LlamaForCausalLM(_tiny_config()).model.layers[0]
    original = layer.self_attn
    naive = copy.copy(layer)
    naive.self_attn = copy.copy(layer.self_attn)
    assert layer.self_attn is naive.self_attn is not original  # replaced on the source too
    layer = LlamaForCausalLM(_tiny_config()).model.layers[0]
    own = own_copy(layer, 7)
    assert layer.self_attn is not own.self_attn and layer.self_attn.layer_idx == 0
    assert own.self_attn.layer_idx == 7 and own.mlp is layer.mlp


def _tiny_config():
    from evomerge.testing.tiny_llama import tiny_llama_config

    return tiny_llama_config(vocab_size=40, hidden_size=16, num_layers=1, num_heads=2)


def test_invalid_paths_fail_before_anything_is_built(routing_pair, tmp_path):
    a, b, sources = routing_pair
    wide = save_random_llama(tmp_path / "wide", seed=2, num_layers=LAYERS, hidden_size=48)
    recipe = routed_recipe(a, b)
    data = recipe.to_dict()
    data["routing"]["path"][1]["model"] = str(wide)
    with pytest.raises(ConfigError, match="hidden_size is 48.*one architecture and width"):
        build_routed(routed_recipe(a, b).model_validate(data),
                     {**sources, str(wide): load_sources([wide])[str(wide)]})
    data["routing"]["path"][1] = {"model": b, "layer": LAYERS}
    with pytest.raises(ConfigError, match=r"routing.path\[1\].layer.*has 3 layers"):
        build_routed(recipe.model_validate(data), sources)
    with pytest.raises(ConfigError, match="not among the models given"):
        check_layers(recipe.routing, {a: LAYERS})


def test_sources_over_a_live_mergers_tensors_route_as_loaded_ones(routing_pair):
    from evomerge.merge.live import LiveMerger
    from evomerge.merge.routed_model import resident_sources

    a, b, sources = routing_pair
    with LiveMerger([a, b]) as merger:
        resident = resident_sources(merger)
        assert set(resident) == set(merger.weights)
        held = {t.data_ptr() for w in merger.weights.values() for t in w.values()}
        assert {p.data_ptr() for m in resident.values() for p in m.parameters()} <= held
        recipe = routed_recipe(a, b)
        assert_same_outputs(build_routed(recipe, sources), build_routed(recipe, resident),
                            seed=6)


def test_a_hop_scales_the_hidden_state_passed_by_position_or_by_name():
    from evomerge.merge.routed_layers import RoutedHop

    class Echo(torch.nn.Module):
        def forward(self, hidden_states, extra=0):
            return hidden_states + extra if extra else hidden_states

    x = torch.ones(2, 3)
    hop = RoutedHop(Echo(), index=0, scale=2.0)
    assert torch.equal(hop(x, extra=1), torch.full((2, 3), 3.0))
    assert torch.equal(hop(hidden_states=x, extra=1), torch.full((2, 3), 3.0))
    assert RoutedHop(Echo(), index=0)(x) is x  # scale 1: the very input, untouched
