"""Root tractography and along-root profiles (L1–S1).

:func:`track_roots` tracks each root from its seeds with dipy and keeps the streamlines per
(level, side) with a centre-line, a tube ROI and the distance along the root from the dural
junction; :func:`along_root_profiles` samples FA/ADC/MD/AD/RD along each root and
:func:`compare_profiles` compares left and right at homologous distances.
Heavy dependencies (dipy, scipy, matplotlib) are imported inside functions.
"""

from __future__ import annotations

from .profiles import ProfileComparison, ProfileTable, RootProfile, along_root_profiles, compare_profiles, find_lesions
from .tracking import RootBundle, RootTracts, TrackingParams, track_roots

__all__ = ["track_roots", "TrackingParams", "RootTracts", "RootBundle", "along_root_profiles",
           "ProfileTable", "RootProfile", "compare_profiles", "ProfileComparison", "find_lesions"]
