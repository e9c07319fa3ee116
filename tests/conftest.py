"""Shared test set-up: a fixed hypothesis profile; the tests folder and the repository root
(for `lessons.support`, which the lessons tests import) on sys.path."""
import os
import sys

from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Derandomized and without deadlines: the same examples on every run (no flaky CI), and no
# failures because a 2-core machine was busy. `HYPOTHESIS_PROFILE=dev` explores more.
settings.register_profile("ci", deadline=None, derandomize=True, max_examples=50,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
