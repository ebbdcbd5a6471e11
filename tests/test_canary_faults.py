"""A canary under faults (a hostile review's reproductions): a failed switch, a failed or interrupted
rollback, a lost lock; what the records keep; booleans where numbers belong. The weight always ends
at 0, and the records say what the release was judged on."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pytest

from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.history.lifecycle import read_lifecycle
from release.testing.fake_engine import FakeEngine
from tests.prometheus_server import Traffic, prometheus_with
from tests.release_doubles import FAST_HEALTH_CHECK, NEW_API, cluster, history_of, signed_project

ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


def quiet(engine: FakeEngine) -> ReleaseContext:
    """A context whose waits return at once (the series already fill every window)."""
    return ReleaseContext.for_tests(engine, engine.project_dir, sleep=lambda _: None)


def weight_deployed(engine: FakeEngine) -> str:
    """The idle color's weight in the deployed live route `api` (the live color's is 100 minus it)."""
    for urn, inputs in engine.stacks["staging"].deployed.items():
        if urn.endswith(f"{ROUTE}::api"):
            live, idle = (ref["weight"] for ref in inputs["spec"]["rules"][0]["backendRefs"])
            assert live + idle == 100
            return str(idle)
    raise KeyError("HTTPRoute api")


@contextmanager
def staging(blue_errors: float = 0.001, steps=(10, 50), **analysis: Any):
    traffic = [Traffic("api", "blue", 50, error_share=blue_errors), Traffic("api", "green", 50)]
    with prometheus_with(traffic) as loaded:
        engine = FakeEngine(project_dir=signed_project())
        edit = {
            "platform:healthCheck": FAST_HEALTH_CHECK,
            "platform:analysis": {"prometheusUrl": loaded.url, **analysis},
            "platform:strategy": {"type": "canary", "steps": list(steps), "pauseSeconds": 60},
        }
        engine.add_stack("staging", edit=edit)
        with cluster(engine) as api:
            yield engine, api, loaded


def test_a_failed_switch_after_canary_steps_returns_the_canary_weight_to_0() -> None:
    with staging() as (engine, api, _):
        # ups: 1 preview, 2 canary 10%, 3 canary 50%, 4 switch
        engine.fail_up(4, "the Ingress controller webhook timed out")
        report = deploy(quiet(engine), api.request(NEW_API))
        unfinished = read_lifecycle(history_of(engine, "staging")).unfinished
        assert report.phase == "RolledBack"
        assert not unfinished
        assert weight_deployed(engine) == "0", "the route still sends the idle color traffic"


def test_the_rollback_record_keeps_the_failed_analysis_not_the_first_one(monkeypatch) -> None:
    import release.flows.deploy as deploy_module

    real = deploy_module.analyse
    bad_traffic = [Traffic("api", "blue", 50, error_share=0.02), Traffic("api", "green", 50)]
    with prometheus_with(bad_traffic) as bad, staging() as (engine, api, _):
        calls = {"n": 0}

        def analyse(settings, *args, **kwargs):
            calls["n"] += 1
            # the canary steps (2 checks at 10%: 1 early + 1 final... ) see a healthy color; from the
            # metrics step on, the new color errs
            if kwargs.get("baseline_at") is not None:
                settings = settings.model_copy(update={"prometheus_url": bad.url})
                args = (*args[:3], deploy_module.prometheus_query(settings), *args[4:])
            return real(settings, *args, **kwargs)

        monkeypatch.setattr(deploy_module, "analyse", analyse)
        report = deploy(quiet(engine), api.request(NEW_API))
        assert report.phase == "RolledBack", report.failure
        assert report.failure.startswith("metrics:"), report.failure
        rollback = next(
            e.record for e in history_of(engine, "staging") if e.record and e.record.event == "rollback"
        )
        assert rollback.window["analysis"]["outcome"] == "Failed", rollback.window["analysis"]["outcome"]


def test_the_verify_record_keeps_the_post_switch_metrics() -> None:
    with staging() as (engine, api, _):
        report = deploy(quiet(engine), api.request(NEW_API))
        assert report.phase == "Healthy", report.failure
        metrics = next(s for s in report.steps if s.name == "metrics")
        verify = next(
            e.record for e in history_of(engine, "staging") if e.record and e.record.event == "verify"
        )
        kept = [
            m["query"] for m in verify.window["analysis"]["measurements"] if m["name"] == "error-increase"
        ]
        assert metrics.analysis is not None
        ran = [m["query"] for m in metrics.analysis["measurements"] if m["name"] == "error-increase"]
        assert kept == ran, "verify record keeps the canary 10% analysis"


def _abort(engine, api):
    from release.flows.abort import AbortRequest, abort
    from tests.release_doubles import TEST_SIGNER

    request = AbortRequest("staging", "api", "bob", reason="finish it", stable_urls=[api.stable_url])
    request.signer = TEST_SIGNER
    return abort(ReleaseContext.for_tests(engine, engine.project_dir), request)


def test_abort_after_a_failed_rollback_up_returns_the_weight_to_0() -> None:
    with staging(blue_errors=0.02) as (engine, api, _):
        # ups: 1 preview, 2 canary 10% (fails on metrics), 3 rollback
        engine.fail_up(3, "kube API unreachable")
        report = deploy(quiet(engine), api.request(NEW_API))
        assert report.phase == "RollbackFailed", report.phase
        assert weight_deployed(engine) == "10"
        assert read_lifecycle(history_of(engine, "staging")).unfinished  # the next command notices: good
        _abort(engine, api)
        assert not read_lifecycle(history_of(engine, "staging")).unfinished
        assert weight_deployed(engine) == "0", "the route still sends the idle color traffic"


def test_ctrl_c_during_the_rollback_up_then_abort(monkeypatch) -> None:
    with staging(blue_errors=0.02) as (engine, api, _):
        real_up = engine.up
        count = {"n": 0}

        def up(stack, config, message, targets=(), on_output=None):
            count["n"] += 1
            if count["n"] == 3:  # the rollback: the adapter has set config, then Ctrl-C stops `pulumi up`
                engine.stacks[stack].config.update(config)
                raise KeyboardInterrupt
            return real_up(stack, config, message, targets, on_output)

        monkeypatch.setattr(engine, "up", up)
        with pytest.raises(KeyboardInterrupt):
            deploy(
                quiet(engine),
                api.request(NEW_API),
            )
        monkeypatch.setattr(engine, "up", real_up)
        assert weight_deployed(engine) == "10"
        assert read_lifecycle(history_of(engine, "staging")).unfinished
        _abort(engine, api)
        assert weight_deployed(engine) == "0", "the route still sends the idle color traffic"


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("platform:strategy", {"type": "canary", "steps": [True, 50]}),  # YAML `yes`/`true` -> a 1% step
        (
            "platform:analysis",
            {"prometheusUrl": "http://prometheus.monitoring.example.test:9090", "maxErrorRatio": True},
        ),
        (
            "platform:analysis",
            {
                "prometheusUrl": "http://prometheus.monitoring.example.test:9090",
                "maxErrorRatioIncrease": True,
            },
        ),
    ],
    ids=["bool step", "bool maxErrorRatio", "bool maxErrorRatioIncrease"],
)
def test_booleans_in_canary_and_analysis_knobs_are_refused(project, knob, value) -> None:
    from core.config.rules import load_stack_config
    from core.config.sources import read_stack_file
    from core.errors import ConfigError
    from tests.conftest import SECRET_NAMES, edit_yaml

    def edit(document):
        document["config"][knob] = value

    edit_yaml(project / "Pulumi.staging.yaml", edit)
    with pytest.raises(ConfigError):
        load_stack_config(read_stack_file(project, "staging", SECRET_NAMES).raw)


def test_lock_lost_mid_canary_leaves_an_unfinished_release_and_abort_returns_weight_0() -> None:
    with staging() as (engine, api, _):

        def sleep(_):
            engine.hold_lock("alice's pulumi up")  # someone else takes the lock while 10% holds

        deploy(ReleaseContext.for_tests(engine, engine.project_dir, sleep=sleep), api.request(NEW_API))
        assert weight_deployed(engine) == "10"
        assert read_lifecycle(history_of(engine, "staging")).unfinished
        engine._lock_holder = ""
        assert _abort(engine, api).phase == "Healthy"
        assert weight_deployed(engine) == "0"
