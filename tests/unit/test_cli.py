"""The ``gridmap`` console command (click, no database needed)."""

from __future__ import annotations

import json

import cv2
import numpy as np
from click.testing import CliRunner

from web.cli import main


def test_every_command_has_help():
    runner = CliRunner()
    for args in ([], ["db"], ["demo"], ["density"], ["db", "start"], ["db", "url"],
                 ["demo", "load"], ["density", "estimate"], ["serve"]):
        result = runner.invoke(main, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Usage:" in result.output


def test_density_estimate_prints_json_lines(tmp_path):
    image = np.full((360, 640, 3), 120, np.uint8)
    path = tmp_path / "empty.png"
    cv2.imwrite(str(path), image)
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps({
        "roi": [[50, 100], [600, 100], [600, 350], [50, 350]],
        "area_m2": 120.0,
        "person_height_px": [[350, 120], [100, 40]],
    }))
    result = CliRunner().invoke(main, ["density", "estimate", str(path), "--calibration", str(calib)])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[0])
    assert set(line) >= {"frame", "count", "density", "level"}
    assert line["level"] == "A" and line["count"] < 1


def test_density_estimate_bad_calibration_exits_2(tmp_path):
    calib = tmp_path / "calib.json"
    calib.write_text('{"roi": [[0, 0], [1, 1]], "area_m2": -1}')
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((10, 10, 3), np.uint8))
    result = CliRunner().invoke(main, ["density", "estimate", str(image), "--calibration", str(calib)])
    assert result.exit_code == 2 and "error:" in result.output


def test_production_refuses_the_default_secret_key():
    import pytest

    from web import create_app

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"DEPLOYMENT": "production", "DATABASE_URL": "postgresql://x@127.0.0.1/x"})
