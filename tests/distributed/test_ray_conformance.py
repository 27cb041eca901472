"""The sandbox conformance and hostile-program suites, run again on the ray sandbox.

The functions are the ones in ``tests/sandbox``; here their ``sandbox`` fixture is a ray sandbox on the
simulated cluster, so the ray backend meets the same contract as local and docker.
"""

from __future__ import annotations

import pytest

from tests.sandbox.test_api import (  # noqa: F401  (collected here, against the ray sandbox)
    test_a_call_that_did_not_return_reports_no_value,
    test_a_crash_in_one_test_does_not_sink_the_others,
    test_arguments_are_fresh_for_every_test,
    test_assert_tests_humaneval_style,
    test_call_tests_are_judged_on_the_host,
    test_comparison_tells_list_from_tuple_and_bool_from_int_but_tolerates_float_noise,
    test_load_error_fails_every_test_with_the_reason,
    test_output_is_captured_and_capped,
    test_plain_data_types_survive_the_round_trip,
    test_run_batch_keeps_order_and_runs_in_parallel,
    test_runtime_errors_name_the_exception,
    test_stdio_program_may_exit_zero_but_not_nonzero,
    test_stdio_tests_compare_tokens_with_float_tolerance,
    test_syntax_error_is_not_compiled_and_runs_nothing,
)
from tests.sandbox.test_hostile import (  # noqa: F401
    test_children_and_threads_do_not_outlive_the_job,
    test_files_outside_the_work_dir_are_out_of_reach,
    test_hostile_program_is_contained,
    test_no_network_to_the_host,
    test_secrets_in_the_environment_are_out_of_reach,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sandbox(ray_cluster):
    """A ray sandbox owning local sandboxes, two workers per actor (the suites expect parallelism)."""
    from codegym.sandbox import make_sandbox

    with make_sandbox("ray", backend="local", workers=2) as box:
        yield box


def test_bad_input_is_refused_before_anything_is_sent(sandbox):
    from codegym.sandbox import CallTest

    with pytest.raises(ValueError, match="no tests"):
        sandbox.run("x = 1", [])
    with pytest.raises(TypeError, match="wrap the single test"):
        sandbox.run("x = 1", CallTest("f"))
    with pytest.raises(ValueError, match="timeout_s"):
        sandbox.run("x = 1", [CallTest("f")], timeout_s=0)
