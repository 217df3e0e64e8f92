"""Models behind one fit/predict interface (:class:`~l2exp.models.base.L2Model`)."""
