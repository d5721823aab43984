"""Model/Fit pairs: ADC (mono-exponential), IVIM, DTI, noise estimates, preprocessing steps.

Each model has a pure, vectorised array function (``(V, N)`` signal → parameter arrays) and a
``fit_<model>(series, ...)`` wrapper that returns a ``<Model>Fit`` holding maps, per-voxel status
codes and provenance. Heavy dependencies (dipy, scipy.optimize) are imported inside functions.
"""
