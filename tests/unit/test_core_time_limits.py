"""The rule for which time limits the pool arms."""

from boundary_celery.core.time_limits import armed_limits


def test_a_hard_limit_before_the_soft_one_is_armed_alone():
    assert armed_limits(1.0, 0.4) == (None, 0.4)
    assert armed_limits(1.0, 1.0) == (None, 1.0)


def test_a_soft_limit_before_the_hard_one_keeps_both():
    assert armed_limits(0.5, 2.0) == (0.5, 2.0)


def test_a_single_limit_is_kept():
    assert armed_limits(None, 3.0) == (None, 3.0)
    assert armed_limits(2.0, None) == (2.0, None)
    assert armed_limits(None, None) == (None, None)
