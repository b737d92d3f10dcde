"""Reference peers: real black-box optimisers behind edpilot's ask/tell protocol (the `peers` extra).

`optuna-tpe` (Optuna's TPESampler), `optuna-gp` (Optuna's GPSampler, which needs torch) and `skopt`
(scikit-optimize's GP Optimizer) search the grid as two integer axes, the frequency level's index and the
batch size's index. Each is told the baseline round as a finished trial, sizes its random start from the
budget, minimises log(cost / baseline cost), passes the p95 and power constraints to the library where it
takes them, and restarts its study when the traffic changes materially (rate ×1.5, lengths ±25 %). Built
through `edpilot.search.strategy_class` by name; the libraries are imported only then.
"""
