"""Claims about minGRU and minLSTM (gradtheory/claims/min_rnn.py; proofs/mingru.tex, proofs/minlstm.tex)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from gradtheory.claims import min_rnn as C


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_gates_without_h_still_need_bptt_but_bptt_is_a_parallel_scan_is_refined(audit, name):
    """'No longer need to BPTT' fails: with zero weights dh_T/dh_0 = 2^-T != 0 exactly (the gradient
    still flows through time); refined: BPTT is the reverse linear scan with the same input-only
    coefficients (proofs/mingru.tex, minlstm.tex: the closed form)."""
    r = audit(f"{name}-no-bptt")
    assert r.status == "refined", r.verdict.evidence
    assert r.verdict.evidence["dhT_dh0_exact"] == str(Fraction(1, 2**C._T))
    assert r.verdict.evidence["dhT_dh0_bptt"] == 2.0**-C._T
    assert r.verdict.evidence["refinement_counterexample"] is None


def test_normalised_gates_keep_the_state_in_the_hull_of_h0_and_candidates_is_proved(audit):
    """f' + i' = 1 (SymPy) and |h_t| <= max(|h_0|, max |h~|) on drawn models (proofs/minlstm.tex)."""
    r = audit("minlstm-time-independent-scale")
    assert r.status == "proved", r.verdict.evidence
    assert r.verdict.evidence["counterexample"] is None


def test_mingru_gradient_never_explodes_but_vanishes_unless_z_tends_to_zero_is_refined(audit):
    """Written 'neither vanishes nor explodes' fails (2^-T at zero weights); the refinement
    ||dh_T/dh_k|| = max prod (1 - z) < 1 is derived and BPTT equals the product in 50 digits
    (proofs/mingru.tex)."""
    r = audit("mingru-gradient-neither-vanishes-nor-explodes")
    assert r.status == "refined", r.verdict.evidence
    assert r.verdict.evidence["refinement_counterexample"] is None


def test_the_reverse_scan_refinement_rejects_a_backward_that_drops_the_direct_path(monkeypatch):
    """Test the tester: with a minGRU whose backward omits dh_t/dh_{t-1} = 1 - z, the refinement's
    property (BPTT = reverse scan) fails and names a counterexample."""

    from gradtheory.cells.mingru import MinGRUCell
    from gradtheory.claims._core import AuditSettings

    original = MinGRUCell.step_backward
    wrong_backward = lambda self, d, c: (original(self, d, c)[0], original(self, d, c)[1], (np.zeros_like(d[0]),))  # noqa: E731
    monkeypatch.setattr(MinGRUCell, "step_backward", wrong_backward)
    ok, bad = C._reverse_scan_is_bptt("mingru", AuditSettings())
    assert not ok and bad is not None
