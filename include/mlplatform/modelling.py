"""Compatibility path for models logged before the model wrapper moved to ``mlplatform.core``.

Models logged then pickle their wrapper by reference as ``mlplatform.modelling.TripModel``;
this module keeps that name importable, so those versions still load in batch scoring and
the serving app. New code imports :mod:`mlplatform.core.modelling`; models logged now carry
their own copy of it (see :func:`mlplatform.stages.training.model_code`).
"""

from mlplatform.core.modelling import TripModel

__all__ = ["TripModel"]
