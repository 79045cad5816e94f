"""Experiments that prove (or disprove) that active learning pays, as seed 002 does.

``results`` is the tidy table every study appends to; ``studies`` define the runs (the
variance study over random subsets, strategy comparisons over seeds); ``runners`` execute
runs in a local process pool or on Ray; ``stats`` and ``plots`` turn the table into
learning curves with confidence bands, labels-to-target and paired tests.
"""
