"""What an snn graph means when executed, in numpy: the connection arrays of a projection
(:mod:`.connectivity`), the rate model (:mod:`.rates`) and the reference simulator's core
(:mod:`.simulator`). docs/snn-semantics.md states the meaning; these modules define it.

Passes, targets and reports all import these modules downward, so they may import only numpy,
scipy, the standard library and :mod:`snnc.ir` (tests/test_layers.py checks it).
"""
