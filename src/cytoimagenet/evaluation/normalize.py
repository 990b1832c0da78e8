"""Profile normalisation against controls: per-plate DMSO z-scores and sphering (TVN).

``plate_dmso``
    For each plate, features are centred on the mean of its control (DMSO) rows and divided
    by their (population) standard deviation; a feature constant in a plate's controls is
    centred only. Every plate needs at least two control rows.

``sphere`` (typical variation normalisation, Ando et al. 2017)
    ZCA whitening fitted on the control rows: ``W = V diag((λ + ε)^−½) Vᵀ`` from the
    eigen-decomposition ``C = V diag(λ) Vᵀ`` of the controls' covariance, with
    ``ε = ridge × mean(λ)`` (so the ridge is relative and scale-free; directions the controls
    do not span get ``ε^−½``). It is computed from a thin SVD of the centred controls, so no
    ``d × d`` matrix is formed when there are fewer controls than features. With a tiny
    ridge the controls' covariance becomes the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cytoimagenet.errors import SchemaError


def plate_dmso(
    x: np.ndarray, plates: Sequence[str], control: np.ndarray, source: str = "features"
) -> np.ndarray:
    """Z-score every plate's rows by the mean/std of that plate's control rows.

    Parameters
    ----------
    x : numpy.ndarray
        ``(rows, features)``.
    plates : sequence of str
        Plate of each row.
    control : numpy.ndarray
        Boolean mask of the control (DMSO) rows.
    source : str
        Named in errors.

    Raises
    ------
    SchemaError
        Naming the plates with fewer than two control rows.
    """
    plates_arr = np.asarray(plates, dtype=object)
    out = np.empty(x.shape, dtype=np.float32)
    short = []
    for plate in sorted(set(plates_arr.tolist())):
        rows = plates_arr == plate
        ref = x[rows & control].astype(np.float64)
        if len(ref) < 2:
            short.append(plate)
            continue
        std = ref.std(axis=0)
        out[rows] = (x[rows] - ref.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if short:
        raise SchemaError(
            f"{source}: plate(s) {short[:5]}{'…' if len(short) > 5 else ''} have fewer than two "
            "control (DMSO) rows, so per-plate normalisation is impossible; use "
            "--normalize zscore or add their controls"
        )
    return out


class Sphering:
    """ZCA whitening fitted on control rows (see the module docstring).

    Parameters
    ----------
    ridge : float
        Regulariser relative to the mean eigenvalue of the controls' covariance.
    """

    def __init__(self, ridge: float = 1.0) -> None:
        if ridge <= 0:
            raise ValueError(f"the sphering ridge must be positive, got {ridge}")
        self.ridge = ridge

    def fit(self, controls: np.ndarray) -> Sphering:
        """Fit on ``(n, d)`` control rows (at least two)."""
        c = np.asarray(controls, dtype=np.float64)
        if c.shape[0] < 2:
            raise SchemaError("sphering needs at least two control rows")
        self.mean_ = c.mean(axis=0)
        centred = c - self.mean_
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        eig = s**2 / (c.shape[0] - 1)
        d = c.shape[1]
        # Mean eigenvalue over all d directions (the trace / d): zeros of the null space count.
        self.eps_ = self.ridge * max(float(eig.sum()) / d, np.finfo(np.float64).tiny)
        self.components_ = vt
        self.scales_ = 1.0 / np.sqrt(eig + self.eps_)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Whiten ``x`` (float32 out)."""
        y = np.asarray(x, dtype=np.float64) - self.mean_
        proj = y @ self.components_.T
        # In-span part scaled per direction; the rest (the controls' null space) by ε^−½.
        out = (proj * self.scales_) @ self.components_
        out += (y - proj @ self.components_) / np.sqrt(self.eps_)
        return out.astype(np.float32)
