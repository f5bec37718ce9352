"""Pure question-answering logic: features, post-processing, metrics.

Nothing in this package imports KFP: components, the notebook, benchmarks and
users' own notebooks all call it directly.
"""
