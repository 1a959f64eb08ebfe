"""The conformance suite: every hook contract of a target plugin, checked through the core.

Use it from a plugin's own tests by subclassing (pytest collects the subclass, never this base)::

    from edgeopt.testing import ConformanceSuite

    class TestMyTargetConformance(ConformanceSuite):
        target = "mytarget"

or against any installed target with ``pytest --edgeopt-target NAME``. The hooks are called the way
a deploy calls them (through ``PluginManager``), on the golden models of ``edgeopt.testing.models``,
and the runner's outputs are compared with ``edgeopt.evaluate.reference.ReferenceRunner`` (fp32 ONNX Runtime)
within the tolerance the target declares per precision (``edgeopt.testing.tolerances``).

A target that reports itself unavailable here is skipped with its reason; an unknown target fails.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from edgeopt.errors import CompileError, EdgeoptError, InputSpecError, TargetError
from edgeopt.evaluate.reference import ReferenceRunner, batch_size_of
from edgeopt.hashing import sha256_file
from edgeopt.measure.devices import default_profile_for, get_profile
from edgeopt.plugin.hook_timeout import hook_timeout_s
from edgeopt.plugin.hookspecs import HOOK_API_VERSION
from edgeopt.plugin.manager import TARGET_HOOKS, PluginManager, get_plugin_manager
from edgeopt.testing.checks import check_compiled
from edgeopt.testing.golden import CHECKED, GoldenGraph, GoldenSet, run_all
from edgeopt.testing.models import GOLDEN_MODELS, golden_feeds
from edgeopt.testing.tolerances import compare_runs, tolerance_for
from edgeopt.testing.watch import confined
from edgeopt.types import (
    Compiled,
    Dataset,
    DeviceProfile,
    Graph,
    PassSpec,
    Plan,
    Runner,
    RunSettings,
    TargetInfo,
)

UNDECLARED_PRECISION = "int3-undeclared"
"""A precision no target declares: planning it must raise or offer nothing."""


class _Quiet:
    """Deploy events that go nowhere (the suite checks results, not progress lines)."""

    def step(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


def _where(target: TargetInfo, precision: str, model: str) -> str:
    return f"target {target.name!r} (plugin {target.plugin!r}), precision {precision!r}, golden model {model!r}"


class ConformanceSuite:
    """Every hook contract for one target. Subclass it as ``Test...`` and set ``target``.

    Class attributes a subclass may set: ``target`` (else ``--edgeopt-target``), ``device`` (a device
    profile name; else ``--edgeopt-device``, else ``host`` for CPU targets or the default profile of
    the target's first device kind), ``deploy_precision`` (the precision of the full deploy; else the
    first declared), ``models`` (golden models to run). Override ``make_plugin_manager`` to load the
    plugin some other way than its installed entry point.
    """

    target: ClassVar[str | None] = None
    device: ClassVar[str | None] = None
    deploy_precision: ClassVar[str | None] = None
    models: ClassVar[tuple[str, ...]] = tuple(GOLDEN_MODELS)
    _managers: ClassVar[dict[type, PluginManager]] = {}
    _golden: ClassVar[dict[type, GoldenSet]] = {}

    # -- how the suite finds the target ------------------------------------------------------------

    @classmethod
    def make_plugin_manager(cls) -> PluginManager:
        """The manager the target is loaded from: by default every installed plugin, as a deploy loads them."""
        return get_plugin_manager()

    @classmethod
    def plugin_manager(cls) -> PluginManager:
        """One manager per suite class, so a plugin quarantined by one test stays quarantined for the rest."""
        if cls not in ConformanceSuite._managers:
            ConformanceSuite._managers[cls] = cls.make_plugin_manager()
        return ConformanceSuite._managers[cls]

    @classmethod
    def target_name(cls, config: pytest.Config) -> str | None:
        return cls.target or config.getoption("edgeopt_target", default=None)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize ``precision`` by the target's declared precisions and ``model`` by ``models``."""
        if "precision" in metafunc.fixturenames:
            name = self.target_name(metafunc.config)
            found = [t for t in self.plugin_manager().targets() if t.name == name] if name else []
            precisions = list(found[0].precisions) if found else [None]
            metafunc.parametrize("precision", precisions, ids=[str(p) for p in precisions])
        if "model" in metafunc.fixturenames:
            metafunc.parametrize("model", list(self.models))

    # -- fixtures ----------------------------------------------------------------------------------

    @pytest.fixture
    def edgeopt_pm(self) -> PluginManager:
        return self.plugin_manager()

    @pytest.fixture
    def edgeopt_target_info(self, request: pytest.FixtureRequest, edgeopt_pm: PluginManager) -> TargetInfo:
        """The target as registered (available or not); fails when no plugin registers it."""
        name = self.target_name(request.config)
        if not name:
            pytest.skip("no target to check: set `target = NAME` on the suite class or pass --edgeopt-target NAME")
        matches = [t for t in edgeopt_pm.targets() if t.name == name]
        if not matches:
            broken = [f"{p.name}: {p.error}" for p in edgeopt_pm.plugins() if p.status != "ok"]
            known = ", ".join(sorted({t.name for t in edgeopt_pm.targets()})) or "none"
            pytest.fail(
                f"no plugin registers target {name!r} (known targets: {known})"
                + (f"; broken plugins: {'; '.join(broken)}" if broken else "")
            )
        return matches[0]

    @pytest.fixture
    def edgeopt_target(self, edgeopt_target_info: TargetInfo) -> TargetInfo:
        """The target, skipping the test with the target's own reason when it cannot run here."""
        if not edgeopt_target_info.available:
            pytest.skip(f"target {edgeopt_target_info.name!r} is unavailable here: {edgeopt_target_info.reason}")
        return edgeopt_target_info

    @pytest.fixture
    def edgeopt_device_name(self, request: pytest.FixtureRequest, edgeopt_target: TargetInfo) -> str:
        chosen = self.device or request.config.getoption("edgeopt_device", default=None)
        if chosen:
            return chosen
        if "cpu" in edgeopt_target.device_kinds:
            return "host"
        return default_profile_for(edgeopt_target.device_kinds[0]).name

    @pytest.fixture
    def edgeopt_device(self, edgeopt_device_name: str) -> DeviceProfile:
        return get_profile(edgeopt_device_name)

    @pytest.fixture
    def golden(self, tmp_path_factory: pytest.TempPathFactory, edgeopt_pm: PluginManager) -> GoldenSet:
        """The golden models, each imported on first use and kept for the rest of the class."""
        if type(self) not in ConformanceSuite._golden:
            ConformanceSuite._golden[type(self)] = GoldenSet(tmp_path_factory.mktemp("edgeopt-golden"), edgeopt_pm)
        return ConformanceSuite._golden[type(self)]

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def first_plan(pm: PluginManager, target: TargetInfo, device: DeviceProfile, graph: Graph, precision: str) -> Plan:
        plans = pm.plan(graph, target, device, precision)
        assert plans, f"edgeopt_plan offered no {precision!r} plan for graph {graph.path.name}"
        return plans[0]

    @staticmethod
    def compile_checked(
        pm: PluginManager, target: TargetInfo, device: DeviceProfile, golden: GoldenGraph, plan: Plan, workdir: Path
    ) -> Compiled:
        """Compile ``plan`` in a fresh ``workdir`` and hold the result to the ``edgeopt_compile`` contract."""
        workdir.mkdir(parents=True, exist_ok=False)
        graph = golden.graph
        before = sha256_file(graph.path)
        with confined(workdir, watch=[Path(graph.path).parent]) as box:
            compiled = pm.compile(graph, plan, target, device, golden.data, workdir)
        where = _where(target, plan.precision, golden.name)
        assert not box.leaks, f"{where}: edgeopt_compile wrote outside its workdir: {'; '.join(box.leaks)}"
        assert sha256_file(graph.path) == before, f"{where}: edgeopt_compile modified graph.path"
        problems = check_compiled(compiled, plan, workdir)
        assert not problems, f"{where}: {'; '.join(problems)}"
        return compiled

    # -- discovery ---------------------------------------------------------------------------------

    def test_target_is_registered_with_its_availability(
        self, edgeopt_pm: PluginManager, edgeopt_target_info: TargetInfo
    ) -> None:
        info = edgeopt_target_info
        same = [t.plugin for t in edgeopt_pm.targets() if t.name == info.name]
        assert len(same) == 1, f"target {info.name!r} is registered by several plugins: {same}"
        status = {s.name: s for s in edgeopt_pm.plugins()}[info.plugin]
        assert status.status == "ok", f"plugin {info.plugin!r} was quarantined: {status.error}"
        assert status.api_version == HOOK_API_VERSION, f"plugin declares EDGEOPT_HOOK_API={status.api_version!r}"
        missing = [h for h in TARGET_HOOKS if h not in status.hooks]
        assert not missing, f"plugin {info.plugin!r} registers targets but does not implement {missing}"
        for t in (t for t in edgeopt_pm.targets() if t.plugin == info.plugin):
            assert isinstance(t.description, str) and t.description.strip(), f"target {t.name!r} has no description"
            assert t.precisions and all(isinstance(p, str) and p for p in t.precisions), (
                f"target {t.name!r} declares no precisions"
            )
            assert "auto" not in t.precisions and len(set(t.precisions)) == len(t.precisions), (
                f"target {t.name!r} precisions must be distinct concrete names, got {t.precisions}"
            )
            assert t.device_kinds, f"target {t.name!r} declares no device kinds"
            assert t.available or t.reason.strip(), f"target {t.name!r} is unavailable without a reason"
            for p in t.precisions:
                tolerance_for(t, p)  # raises LookupError naming what to declare

    # -- plan --------------------------------------------------------------------------------------

    def test_plan_offers_each_declared_precision(
        self,
        edgeopt_pm: PluginManager,
        edgeopt_target: TargetInfo,
        edgeopt_device: DeviceProfile,
        golden: GoldenSet,
        precision: str,
    ) -> None:
        budget = hook_timeout_s()
        for name in self.models:
            started = time.perf_counter()
            plans = edgeopt_pm.plan(golden[name].graph, edgeopt_target, edgeopt_device, precision)
            took = time.perf_counter() - started
            where = _where(edgeopt_target, precision, name)
            assert plans, f"{where}: edgeopt_plan offered no plan"
            for plan in plans:
                assert isinstance(plan, Plan), f"{where}: edgeopt_plan returned {type(plan).__name__}, not Plan"
                assert plan.target == edgeopt_target.name, f"{where}: plan for target {plan.target!r}"
                assert plan.precision == precision, f"{where}: asked for {precision!r}, got {plan.precision!r}"
                assert all(isinstance(p, PassSpec) for p in plan.passes), f"{where}: passes must be PassSpec"
            if budget is not None:
                assert took < budget, f"{where}: edgeopt_plan took {took:.1f} s (hook timeout {budget:g} s)"

    def test_plan_auto_offers_declared_precisions_fp32_first(
        self,
        edgeopt_pm: PluginManager,
        edgeopt_target: TargetInfo,
        edgeopt_device: DeviceProfile,
        golden: GoldenSet,
    ) -> None:
        plans = edgeopt_pm.plan(golden["conv"].graph, edgeopt_target, edgeopt_device, "auto")
        assert plans, "edgeopt_plan offered no plan for precision 'auto'"
        undeclared = {p.precision for p in plans} - set(edgeopt_target.precisions)
        assert not undeclared, f"'auto' offered undeclared precisions {sorted(undeclared)}"
        if "fp32" in edgeopt_target.precisions:
            assert plans[0].precision == "fp32", f"'auto' must list fp32 first, got {plans[0].precision!r}"

    def test_plan_refuses_an_undeclared_precision(
        self,
        edgeopt_pm: PluginManager,
        edgeopt_target: TargetInfo,
        edgeopt_device: DeviceProfile,
        golden: GoldenSet,
    ) -> None:
        try:
            plans = edgeopt_pm.plan(golden["conv"].graph, edgeopt_target, edgeopt_device, UNDECLARED_PRECISION)
        except (TargetError, CompileError):
            return
        assert not plans, f"edgeopt_plan offered {len(plans)} plan(s) for undeclared precision {UNDECLARED_PRECISION!r}"

    # -- compile -----------------------------------------------------------------------------------

    def test_compile_writes_the_declared_files_inside_workdir(
        self,
        edgeopt_pm: PluginManager,
        edgeopt_target: TargetInfo,
        edgeopt_device: DeviceProfile,
        golden: GoldenSet,
        precision: str,
        tmp_path: Path,
    ) -> None:
        plans = edgeopt_pm.plan(golden["conv"].graph, edgeopt_target, edgeopt_device, precision)
        assert plans, f"edgeopt_plan offered no {precision!r} plan"
        for index, plan in enumerate(plans):
            self.compile_checked(
                edgeopt_pm, edgeopt_target, edgeopt_device, golden["conv"], plan, tmp_path / f"plan-{index}"
            )

    # -- runner ------------------------------------------------------------------------------------

    def test_runner_matches_the_reference(
        self,
        edgeopt_pm: PluginManager,
        edgeopt_target: TargetInfo,
        edgeopt_device: DeviceProfile,
        golden: GoldenSet,
        model: str,
        precision: str,
        tmp_path: Path,
    ) -> None:
        g = golden[model]
        plan = self.first_plan(edgeopt_pm, edgeopt_target, edgeopt_device, g.graph, precision)
        compiled = self.compile_checked(edgeopt_pm, edgeopt_target, edgeopt_device, g, plan, tmp_path / "build")
        settings = RunSettings(batch=batch_size_of(g.graph.inputs))
        runner = edgeopt_pm.runner(compiled, edgeopt_target, edgeopt_device, settings)
        assert isinstance(runner, Runner), f"edgeopt_runner returned {type(runner).__name__}, not a Runner"
        reference = ReferenceRunner(g.graph.path)
        try:
            problems = compare_runs(
                run_all(reference, g.data, batch=settings.batch),
                run_all(runner, g.data, batch=settings.batch),
                names=[o.name for o in g.graph.outputs],
                tolerance=tolerance_for(edgeopt_target, precision),
            )
        finally:
            runner.close()
            reference.close()
        assert not problems, f"{_where(edgeopt_target, precision, model)}: {'; '.join(problems)}"

    def test_runner_takes_the_batch_it_was_built_for(
        self,
        edgeopt_pm: PluginManager,
        edgeopt_target: TargetInfo,
        edgeopt_device: DeviceProfile,
        golden: GoldenSet,
        precision: str,
        tmp_path: Path,
    ) -> None:
        g = golden["dynamic_batch"]
        plan = self.first_plan(edgeopt_pm, edgeopt_target, edgeopt_device, g.graph, precision)
        compiled = self.compile_checked(edgeopt_pm, edgeopt_target, edgeopt_device, g, plan, tmp_path / "build")
        reference = ReferenceRunner(g.source)  # the original keeps its symbolic batch
        names = [o.name for o in g.graph.outputs]
        try:
            for batch in (1, 3):
                runner = edgeopt_pm.runner(compiled, edgeopt_target, edgeopt_device, RunSettings(batch=batch))
                try:
                    problems = compare_runs(
                        run_all(reference, g.data, batch=batch),
                        run_all(runner, g.data, batch=batch),
                        names=names,
                        tolerance=tolerance_for(edgeopt_target, precision),
                    )
                finally:
                    runner.close()
                where = _where(edgeopt_target, precision, "dynamic_batch")
                assert not problems, f"{where} at RunSettings(batch={batch}): {'; '.join(problems)}"
        finally:
            reference.close()

    def test_runner_rejects_wrong_inputs_with_input_spec_error(
        self,
        edgeopt_pm: PluginManager,
        edgeopt_target: TargetInfo,
        edgeopt_device: DeviceProfile,
        golden: GoldenSet,
        precision: str,
        tmp_path: Path,
    ) -> None:
        g = golden["two_io"]
        plan = self.first_plan(edgeopt_pm, edgeopt_target, edgeopt_device, g.graph, precision)
        compiled = self.compile_checked(edgeopt_pm, edgeopt_target, edgeopt_device, g, plan, tmp_path / "build")
        runner = edgeopt_pm.runner(compiled, edgeopt_target, edgeopt_device, RunSettings(batch=1))
        good = golden_feeds(g.graph.inputs, batch=1, seed=5)
        cases: dict[str, dict[str, Any]] = {
            "input 'a' with a wrong dimension": {**good, "a": np.zeros((1, 17), np.float32)},
            "input 'a' with a wrong rank": {**good, "a": np.zeros((1, 16, 1), np.float32)},
            "input 'b' missing": {"a": good["a"]},
        }
        try:
            runner.run(good)
            for what, feeds in cases.items():
                try:
                    runner.run(feeds)
                except InputSpecError:
                    continue
                except Exception as exc:
                    pytest.fail(f"{what}: runner raised {type(exc).__name__}: {exc}; it must raise InputSpecError")
                pytest.fail(f"{what}: runner.run accepted it; it must raise InputSpecError")
        finally:
            runner.close()

    # -- end to end --------------------------------------------------------------------------------

    def test_deploy_writes_a_verified_artifact_with_the_plugin_version(
        self,
        edgeopt_pm: PluginManager,
        edgeopt_target: TargetInfo,
        edgeopt_device_name: str,
        golden: GoldenSet,
        tmp_path: Path,
    ) -> None:
        from edgeopt.api import deploy, load
        from edgeopt.artifact.write import verify_artifact

        precision = self.deploy_precision or edgeopt_target.precisions[0]
        g = golden["conv"]
        try:
            deployment = deploy(
                g.source,
                target=edgeopt_target.name,
                device=edgeopt_device_name,
                precision=precision,
                out=tmp_path / "conv.edgeopt",
                runs=10,
                timing_s=0.2,
                plugin_manager=edgeopt_pm,
                events=_Quiet(),
            )
        except EdgeoptError as exc:
            where = f"edgeopt.deploy to {edgeopt_target.name!r} ({precision})"
            pytest.fail(f"{where} failed: [{exc.code}] {exc}; {exc.hint}")
        manifest = verify_artifact(deployment.path)
        version = {s.name: s.version for s in edgeopt_pm.plugins()}[edgeopt_target.plugin]
        recorded = manifest["target"]
        assert (recorded["name"], recorded["plugin"]) == (edgeopt_target.name, edgeopt_target.plugin)
        assert recorded["plugin_version"] == version, f"manifest records plugin version {recorded['plugin_version']!r}"
        assert manifest["plugins"].get(edgeopt_target.plugin) == version
        assert manifest["model_file"] in manifest["files"]
        names = [o.name for o in g.graph.outputs]
        reference = ReferenceRunner(g.graph.path)
        try:
            with load(deployment.path, plugin_manager=edgeopt_pm) as predictor:
                feeds = Dataset({k: v[:CHECKED] for k, v in g.data.arrays.items()}).batches(1)
                outputs = [[predictor(f)[n] for n in names] for f in feeds]
            problems = compare_runs(
                [list(reference.run(f)) for f in feeds],
                outputs,
                names=names,
                tolerance=tolerance_for(edgeopt_target, manifest["plan"]["precision"]),
            )
        finally:
            reference.close()
        assert not problems, f"the deployed artifact, loaded back: {'; '.join(problems)}"
