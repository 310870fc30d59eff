"""The pipeline's steps, one module each; each module's ``STEP`` is named by the job
type table (:mod:`orders.pipeline.jobtypes`) and run by :mod:`orders.pipeline.runner`."""
