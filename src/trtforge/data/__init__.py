"""Inputs, from wherever they come: preprocessing, image folders, labels, arrays, random values.

The data stage is the only place that reads user data; everything downstream (calibration, ``run``,
``compare``, ``bench``, ``deploy``) takes its typed results: :class:`Preprocess`, :class:`Samples`.
"""

from trtforge.data.preprocess import Preprocess
from trtforge.data.samples import Samples, load_samples

__all__ = ["Preprocess", "Samples", "load_samples"]
