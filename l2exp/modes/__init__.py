"""The modes layer: the only code that reads the Hydra config.

One module per ``conf/mode/<name>.yaml``; each turns the composed config into typed objects (data
source, store, feature set, label spec, split, model, execution and risk parameters, tracking
context) and calls library functions that take those objects -- as lightning-hydra-template's
``src/train.py`` does. Library code below ``l2exp/`` never sees a ``DictConfig``, so a task can be
shipped to a process pool or a Ray worker with exactly what it needs.
"""
