"""Active learning: what to label next.

``pool`` holds the arrays a strategy reads (no store, no torch); ``heuristics`` turn model
outputs into per-frame informativeness scores; ``strategies`` turn scores, embeddings and
situation predictions into a batch; ``campaign`` runs the rounds against the store.
"""
