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
