"""The ``evomerge`` console script itself: help without heavy imports, exit codes."""

import subprocess
import sys

import yaml


def _python(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_every_command_without_importing_them():
    probe = ("import sys\n"
             "from evomerge.cli import main\n"
             "main(['--help'])\n"
             "print('loaded:', sorted(m for m in ('evomerge.zoo.cli', 'torch', 'transformers')"
             " if m in sys.modules))\n")
    proc = _python("-c", probe)
    assert proc.returncode == 0, proc.stderr
    for command in ("merge", "convert-recipe", "zoo"):
        assert f"  {command} " in proc.stdout
    assert "The toy model zoo" in proc.stdout
    assert "loaded: []" in proc.stdout


def test_console_script_exit_codes_and_output(tiny_models, tmp_path):
    """``python -m evomerge.cli`` runs :func:`evomerge.cli.run`, which skips interpreter
    teardown: the status, the printed lines and the committed model must all survive."""
    bad = _python("-m", "evomerge.cli", "merge", str(tmp_path / "missing.yaml"),
                  str(tmp_path / "out"))
    assert bad.returncode == 2
    assert "missing.yaml" in bad.stderr and "does not exist" in bad.stderr

    recipe = tmp_path / "linear.yaml"
    recipe.write_text(yaml.safe_dump({
        "merge_method": "linear",
        "models": [{"model": str(tiny_models["a"]), "parameters": {"weight": 0.5}},
                   {"model": str(tiny_models["b"]), "parameters": {"weight": 0.5}}]}))
    out = tmp_path / "out"
    good = _python("-m", "evomerge.cli", "merge", str(recipe), str(out), "--quiet")
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("wrote ") and str(out) in good.stdout
    assert (out / "config.json").exists() and list(out.glob("*.safetensors"))
