"""``gradtheory plot`` writes the gradient-flow and phase-diagram figures as valid PNG files."""

from __future__ import annotations

import struct

from gradtheory.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_command_writes_non_trivial_pngs(tmp_path, capsys):
    """Both files exist, start with the PNG signature and an IHDR chunk of the expected canvas
    size (figsize * dpi), end with IEND, and are large enough to hold drawn axes (> 20 kB)."""
    out = tmp_path / "figs"
    assert main(["plot", "--out", str(out), "--steps", "40", "--hidden", "6"]) == 0
    printed = capsys.readouterr().out
    expected = {"gradient_flow.png": (13 * 110, int(4.4 * 110)), "phase_diagram.png": (11 * 110, int(4.4 * 110))}
    for name, (width, height) in expected.items():
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        assert data[12:16] == b"IHDR"
        w, h = struct.unpack(">II", data[16:24])
        assert (w, h) == (width, height), (name, w, h)
        assert data[-8:-4] == b"IEND"
        assert len(data) > 20_000, (name, len(data))
        assert f"wrote {out / name}" in printed


def test_plot_rejects_bad_steps_as_a_usage_error(tmp_path, capsys):
    assert main(["plot", "--out", str(tmp_path), "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
