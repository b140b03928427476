from click.testing import CliRunner

from evomerge.zoo.cli import zoo


def test_build_reuses_and_landscape_prints_the_table(tiny_zoo):
    runner = CliRunner()
    built = runner.invoke(zoo, ["build", str(tiny_zoo.root), "--preset", "tiny"])
    assert built.exit_code == 0, built.output
    assert tiny_zoo.manifest["spec_hash"] in built.output
    assert "--include_path" in built.output

    shown = runner.invoke(zoo, ["landscape", str(tiny_zoo.root), "--levels", "0,1",
                                "--limit", "8"])
    assert shown.exit_code == 0, shown.output
    assert "expert_sort" in shown.output and "best merge" in shown.output


def test_user_errors_exit_with_status_2(tmp_path):
    runner = CliRunner()
    (tmp_path / "notes.txt").write_text("x")
    refused = runner.invoke(zoo, ["build", str(tmp_path), "--preset", "tiny"])
    assert refused.exit_code == 2 and "not a zoo" in refused.output

    missing = runner.invoke(zoo, ["landscape", str(tmp_path)])
    assert missing.exit_code == 2 and "zoo.json is missing" in missing.output

    unknown = runner.invoke(zoo, ["build", str(tmp_path / "new"), "--preset", "huge"])
    assert unknown.exit_code == 2 and "tiny" in unknown.output


def test_landscape_markdown_names_command_spec_versions_and_both_splits(tiny_zoo):
    import torch
    import transformers

    shown = CliRunner().invoke(zoo, ["landscape", str(tiny_zoo.root), "--split", "test",
                                     "--levels", "0,1", "--limit", "8", "--markdown"])
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert f"`zoo landscape {tiny_zoo.root} --split test --levels 0,1 --limit 8 --markdown`" \
        in text
    assert f"zoo spec `{tiny_zoo.manifest['spec_hash']}`" in text
    assert "the code that scored it builds this spec" in text
    assert f"torch {torch.__version__}" in text
    assert f"transformers {transformers.__version__}" in text
    assert f"torch CPU kernels {torch.backends.cpu.get_cpu_capability()}" in text
    assert "| model (search split) |" in text
    assert "| model (test split; merges chosen on the search split) |" in text
    assert "8 documents per task and split" in text
    # one row per model and per chosen merge in each table: base, 4 experts, 2 merges
    assert text.count("| expert_sort |") == 2 and text.count("| best merge by `acc`") == 2


def test_the_top_level_command_lists_the_zoo_with_its_own_help():
    from evomerge.cli import cli
    from evomerge.zoo import CLI_HELP

    listed = CliRunner().invoke(cli, ["--help"])
    assert listed.exit_code == 0, listed.output
    assert CLI_HELP in " ".join(listed.output.split())
    assert zoo.help == CLI_HELP
