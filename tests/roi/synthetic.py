"""A small synthetic, left-right symmetric 'lumbar' volume with known roots and midline.

Used until/alongside dwi_toolkit.phantom: the geometry is built in a body frame and placed in
the world with a known rotation about the S-I axis and a known shift, so tests know the true
mid-sagittal plane and the true root centre-lines.
"""

from __future__ import annotations

import numpy as np

AFFINE = np.array([[1.5, 0, 0, -48.0], [0, 1.5, 0, -48.0], [0, 0, 4.0, -32.0], [0, 0, 0, 1]])
SHAPE = (64, 64, 16)


def rot_z(deg):
    t = np.radians(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])


def make_volume(*, yaw_deg=0.0, shift_x=0.0, noise=0.0, seed=0, root_radius=2.5):
    """Return (vol, affine, plane_point, plane_normal, roots) with roots {side: (a, b) world}."""
    rot = rot_z(yaw_deg)
    centre = np.array([shift_x, 0.0, 0.0])
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1).reshape(-1, 3)
    world = ijk @ AFFINE[:3, :3].T + AFFINE[:3, 3]
    u = (world - centre) @ rot  # body frame (inverse rotation)
    vol = np.zeros(len(u))
    vol[(u[:, 0] / 40) ** 2 + (u[:, 1] / 30) ** 2 <= 1] = 0.4  # "muscle"
    vol[(u[:, 0] / 11) ** 2 + ((u[:, 1] - 8) / 9) ** 2 <= 1] = 0.7  # vertebral body
    vol[(u[:, 0] / 6) ** 2 + ((u[:, 1] + 8) / 5) ** 2 <= 1] = 0.2  # canal (dark on high b)
    vol[(u[:, 0] / 3) ** 2 + ((u[:, 1] + 22) / 6) ** 2 <= 1] = 0.9  # spinous process, asymmetric in y only
    roots = {}
    for side, sx in (("left", -1.0), ("right", 1.0)):
        a_b, b_b = np.array([sx * 8, -6, 14.0]), np.array([sx * 26, 4, -14.0])
        ab = b_b - a_b
        t = np.clip(((u - a_b) @ ab) / (ab @ ab), 0, 1)
        d = np.linalg.norm(u - (a_b + t[:, None] * ab), axis=1)
        vol[d <= root_radius] = 1.5
        roots[side] = (a_b @ rot.T + centre, b_b @ rot.T + centre)
    vol = vol.reshape(SHAPE)
    if noise:
        vol = vol + np.random.default_rng(seed).normal(0, noise, SHAPE)
    normal = rot @ np.array([1.0, 0, 0])
    return vol, AFFINE.copy(), centre, normal, roots
