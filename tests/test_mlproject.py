"""``MLproject``: every entry point's command, with its default parameters, names files that exist and arguments that
the command takes (ids of the bundle config for ``python -m monai.bundle run``, options of ``mmif``)."""

from __future__ import annotations

import shlex
import unittest

import yaml
from monai.bundle import ConfigParser

from mmif.cli import build_parser
from tests.utils import REPO_ROOT

# arguments of `python -m monai.bundle run` itself (not config ids)
RUNNER_ARGS = {"config_file", "meta_file", "logging_file", "tracking", "run_id", "init_id", "final_id"}


def _commands() -> dict[str, list[str]]:
    """Entry point name -> its command as argv, parameters filled with their defaults (``PARAM`` without one)."""
    project = yaml.safe_load((REPO_ROOT / "MLproject").read_text(encoding="utf-8"))
    commands = {}
    for name, entry in project["entry_points"].items():
        params = {k: str(v.get("default", k.upper())) for k, v in entry.get("parameters", {}).items()}
        commands[name] = shlex.split(entry["command"].format(**params))
    return commands


def _options(argv: list[str]) -> dict[str, str]:
    """``--key value`` pairs of ``argv`` (the value of a flag without one is ``""``)."""
    options, i = {}, 0
    while i < len(argv):
        if argv[i].startswith("--"):
            has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
            options[argv[i][2:]] = argv[i + 1] if has_value else ""
            i += 2 if has_value else 1
        else:
            i += 1
    return options


class TestMLproject(unittest.TestCase):
    def test_has_the_entry_points_of_the_issue(self):
        self.assertLessEqual({"pipeline", "stage1", "stage2", "infer", "evaluate"}, set(_commands()))

    def test_bundle_commands_override_ids_their_config_has(self):
        for name, argv in _commands().items():
            if argv[:4] != ["python", "-m", "monai.bundle", "run"]:
                continue
            with self.subTest(name):
                options = _options(argv[4:])
                config_file = REPO_ROOT / options["config_file"]
                self.assertTrue(config_file.is_file(), config_file)
                self.assertTrue((REPO_ROOT / options["meta_file"]).is_file())
                parser = ConfigParser()
                parser.read_config(str(config_file))
                for key in set(options) - RUNNER_ARGS:
                    self.assertTrue(key in parser, f"{name}: --{key} is not an id of {config_file.name}")
                for key in ("stage1_ckpt", "ckpt_dir"):  # shipped weights named by default must be there
                    if key in options and options[key].startswith("bundles/"):
                        self.assertTrue((REPO_ROOT / options[key]).exists(), options[key])
                if "ckpt_dir" in options and "train_stage" in config_file.name:  # never over the shipped weights
                    self.assertFalse(options["ckpt_dir"].startswith("bundles/"), options["ckpt_dir"])

    def test_mmif_commands_parse(self):
        for name, argv in _commands().items():
            if argv[:3] != ["python", "-m", "mmif"]:
                continue
            with self.subTest(name):
                args = build_parser().parse_args(argv[3:])  # exits (SystemExit) on an unknown option
                self.assertEqual(args.command, argv[3])


if __name__ == "__main__":
    unittest.main()
