"""cortexfm: foundation models of mouse visual cortex.

Data flows one way through the sub-packages:
``data -> model -> train -> evaluate / insilico / anatomy -> report``;
``stimuli`` and ``sim`` produce the built-in simulated cohort.
"""

__version__ = "0.1.0"
