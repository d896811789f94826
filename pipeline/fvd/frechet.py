"""The Fréchet distance between two sets of embeddings, in float64 (Heusel et al. 2017).

FD = |mu_r - mu_f|^2 + Tr(S_r) + Tr(S_f) - 2 Tr sqrt(S_r S_f), with unbiased covariances
(divided by N - 1), as TF-GAN's ``frechet_classifier_distance_from_activations`` that the
reference FVD calls: Tr sqrt(S_r S_f) = Tr sqrt(A S_f A) with A = sqrt(S_r), both symmetric
square roots by SVD, singular values below 1e-10 left unrooted (fvd.md 1.4).

At the thesis's sample sizes (16 or 128 videos against 400 logits) the covariances have rank
below N, and the same trace is the nuclear norm of the N x M cross-Gram matrix of the centred
features: the non-zero eigenvalues of S_r S_f = X'X Y'Y / c are those of (X Y')(X Y')' / c, so
Tr sqrt(S_r S_f) = sum of the singular values of X Y' / sqrt((N-1)(M-1)). That path is exact,
needs an N x M SVD instead of two 400 x 400 ones, and takes resampled Gram blocks directly,
which makes the bootstrap of :mod:`pipeline.fvd.protocol` cheap. :func:`frechet_distance_features`
takes whichever path is smaller; the tests check both against SciPy's ``sqrtm``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "feature_statistics",
    "symmetric_sqrt",
    "trace_sqrt_product",
    "frechet_distance",
    "frechet_distance_from_grams",
    "frechet_distance_features",
]

SQRT_EPS = 1e-10  # TF-GAN's _symmetric_matrix_square_root eps


def _as_features(features: np.ndarray, name: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"{name}: need [N >= 2, D] features, got shape {list(features.shape)}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{name}: features contain NaN or infinity")
    return features


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (divided by N - 1) of ``[N, D]``, float64."""
    features = _as_features(features, "features")
    return features.mean(axis=0), np.cov(features, rowvar=False, ddof=1)


def symmetric_sqrt(matrix: np.ndarray, eps: float = SQRT_EPS) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by SVD (TF-GAN's convention)."""
    u, s, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    rooted = np.where(s < eps, s, np.sqrt(s))
    return (u * rooted) @ vt


def trace_sqrt_product(sigma: np.ndarray, sigma_w: np.ndarray) -> float:
    """Tr sqrt(sigma sigma_w), computed as Tr sqrt(A sigma_w A) with A = sqrt(sigma)."""
    root = symmetric_sqrt(sigma)
    return float(np.trace(symmetric_sqrt(root @ sigma_w @ root)))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), float64 (reference formula)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    # Squared differences rather than a norm, as TF-GAN (more stable for large means).
    mean_term = float(np.sum((mu1 - mu2) ** 2))
    return float(np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2) + mean_term)


def _double_centre(gram: np.ndarray) -> np.ndarray:
    """C_n G C_m for stacked Gram blocks ``[..., n, m]``: the Gram matrix of centred features."""
    return (gram - gram.mean(axis=-1, keepdims=True) - gram.mean(axis=-2, keepdims=True)
            + gram.mean(axis=(-2, -1), keepdims=True))


def frechet_distance_from_grams(gram_xx: np.ndarray, gram_yy: np.ndarray, gram_xy: np.ndarray) -> np.ndarray:
    """Fréchet distances from stacked Gram blocks: X X' ``[..., n, n]``, Y Y' ``[..., m, m]``, X Y' ``[..., n, m]``.

    Exact for any n, m, D (see the module docstring); the features never appear, so a bootstrap
    passes the resampled rows and columns of Gram matrices computed once.
    """
    n, m = gram_xy.shape[-2], gram_xy.shape[-1]
    mean_term = (gram_xx.sum(axis=(-2, -1)) / n**2 + gram_yy.sum(axis=(-2, -1)) / m**2
                 - 2.0 * gram_xy.sum(axis=(-2, -1)) / (n * m))
    trace_x = np.trace(_double_centre(gram_xx), axis1=-2, axis2=-1) / (n - 1)
    trace_y = np.trace(_double_centre(gram_yy), axis1=-2, axis2=-1) / (m - 1)
    singular = np.linalg.svd(_double_centre(gram_xy), compute_uv=False)
    cross = singular.sum(axis=-1) / np.sqrt((n - 1) * (m - 1))
    return trace_x + trace_y - 2.0 * cross + mean_term


def frechet_distance_features(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between two feature sets ``[N, D]`` and ``[M, D]``, float64.

    Uses the cross-Gram path when min(N, M) < D (the thesis's case), else the covariance path.
    """
    real, fake = _as_features(real, "real"), _as_features(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: {real.shape[1]} vs {fake.shape[1]}")
    if min(len(real), len(fake)) < real.shape[1]:
        # A common shift leaves the distance unchanged and keeps the Gram entries small.
        shift = real.mean(axis=0)
        x, y = real - shift, fake - shift
        return float(frechet_distance_from_grams(x @ x.T, y @ y.T, x @ y.T))
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))
