"""Shared test settings: the hypothesis profile of the fuzz suite.

`AXELSIM_FUZZ_EXAMPLES` sets the examples per fuzz test (`make fuzz` uses 2000); the default
keeps `make test` fast. Fuzz tests opt in with `@settings(settings.get_profile("axelsim-fuzz"))`
(see tests/fuzz_helpers.py); other hypothesis tests keep their own settings.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "axelsim-fuzz",
    max_examples=int(os.environ.get("AXELSIM_FUZZ_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
