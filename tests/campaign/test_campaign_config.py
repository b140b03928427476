"""The campaign file: a valid one loads with its space bound and optimizer checked; each
kind of bad input fails before any model loads, with one message naming the field."""

from __future__ import annotations

import pytest
import yaml
from campaign_support import DELETE, SPACES, write_campaign

from evomerge.campaign.config import load_campaign
from evomerge.errors import ConfigError, EvomergeError, UnknownNameError


def test_a_valid_campaign_binds_its_space_and_names_its_objective(campaign_file, tiny_zoo):
    campaign = load_campaign(campaign_file)
    assert campaign.space.dim == 2  # one weight per source
    assert campaign.objectives.names == ("score",)
    assert campaign.config.models.base == str(tiny_zoo.base.resolve())
    again = yaml.safe_load(campaign.to_yaml())
    assert again["space"]["merge_method"] == "task_arithmetic"  # the space inline
    assert campaign.build_optimizer().dim == 2


def test_the_space_path_is_read_from_the_campaign_files_folder(tiny_zoo, tmp_path):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "s.yaml").write_text((SPACES / "task_arithmetic.yaml").read_text())
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, space="spaces/s.yaml")
    assert load_campaign(path).space.dim == 2


@pytest.mark.parametrize(("changes", "field", "rule"), [
    ({"budjet": {"evaluations": 3}}, "budjet", "did you mean 'budget'"),
    ({"budget__evaluations": 0}, "budget.evaluations", "greater than 0"),
    ({"budget": {}}, "budget", "give evaluations, hours, documents, or several"),
    ({"budget__hours": -1}, "budget.hours", "greater than 0"),
    ({"executor__kind": "slurm"}, "executor.kind", "'local' or 'ray'"),
    ({"executor__address": "127.0.0.1:6379"}, "executor", "needs kind ray"),
    ({"models__sources": ["/no/such/model"]}, "models.sources[0]", "no such model folder"),
    ({"optimizer": {"name": "cma", "options": {"sigma": 0.2}}}, "optimizer.options.sigma",
     "sigma0"),
    ({"optimizer": {"name": "cma", "options": {"popsize": 1}}},
     "optimizer.options.popsize", ">= 2"),
    ({"objectives": ["accuracy"]}, "objectives", "reports only"),
    ({"format": "evomerge/campaign-v0"}, "format", "campaign-v1"),
    ({"seed": DELETE, "name": ""}, "name", "at least 1 character"),
])
def test_bad_input_names_the_file_field_and_rule(tiny_zoo, tmp_path, changes, field, rule):
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, **changes)
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert err.value.file == path
    assert err.value.field == field
    assert rule in err.value.rule


def test_an_unknown_optimizer_lists_the_known_ones(tiny_zoo, tmp_path):
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, optimizer={"name": "cmaes"})
    with pytest.raises(UnknownNameError, match="did you mean 'cma'"):
        load_campaign(path)


def test_a_space_that_does_not_fit_the_models_is_refused(tiny_zoo, tmp_path):
    space = {"merge_method": "task_arithmetic",
             "models": {"base": "base", "sources": ["add", "read", "sort"]},
             "genes": [{"param": "weight", "per": ["model"], "bounds": [0, 1]}]}
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, space=space)
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert err.value.file == path
    assert "3" in str(err.value) and "2" in str(err.value)


def test_a_report_task_on_the_search_data_is_refused(tiny_zoo, tmp_path):
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, evaluation={"lm_eval": {
        "include_paths": [str(tiny_zoo.task_dir)],
        "search_tasks": [{"name": "zoo_add_mc_search", "limit": 4}],
        "report_tasks": [{"name": "zoo_add_gen_search"}]}})
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert err.value.field == "evaluation.lm_eval.report_tasks[0].name"


def test_overrides_replace_fields_and_are_checked_too(campaign_file):
    assert load_campaign(campaign_file, {"budget.evaluations": 2}).config.budget.evaluations == 2
    with pytest.raises(EvomergeError, match="budget.evaluations"):
        load_campaign(campaign_file, {"budget.evaluations": -2})


def test_a_method_that_needs_a_base_without_one_is_refused(tiny_zoo, tmp_path):
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, models__base=DELETE)
    with pytest.raises(ConfigError, match="base") as err:
        load_campaign(path)
    assert err.value.file == path


def test_models_that_cannot_be_merged_are_refused(tiny_zoo, tmp_path):
    from evomerge.testing.random_models import save_random_llama

    wider = save_random_llama(tmp_path / "wider", hidden_size=64, intermediate_size=96)
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo,
                          models__sources=[str(tiny_zoo.experts["add"]), str(wider)])
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert err.value.file == path and "shape" in str(err.value)
