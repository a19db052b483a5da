"""The operator scenarios of tests/test_operator_cluster.py on kind: the same test functions, with the
``kube_cluster`` fixture of this directory. The one scenario that writes pod status by hand (standing in for a
kubelet and a scheduler the local control plane lacks) is left out: kind has both."""

from test_operator_cluster import (  # noqa: F401  (fixtures and the scenarios, collected here again)
    admin,
    ns,
    operator,
    operator_kubeconfig,
    test_delete_removes_every_child_and_no_finalizer_holds_it,
    test_examples_chain_collect_train_optimize_with_only_the_charts_permissions,
    test_missing_secret_runtime_class_and_training_are_conditions,
    test_pre_running_deadline_fails_the_resource_and_ttl_deletes_it_with_its_children,
    test_real_runner_reports_progress_with_its_own_token_scripted_llm,
    test_restarts_at_random_points_never_duplicate_children,
    test_runner_token_may_patch_only_its_own_status,
    test_suspend_stops_and_resumes,
)
