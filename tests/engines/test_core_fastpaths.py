"""The core's hand-optimized hot paths must equal the plain library code they replace."""

from __future__ import annotations

import dataclasses
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from engines.core.children import _launched_iterations
from engines.core.params import step_instance_uuid
from engines.core.retry import RetryCounters
from engines.core.state import Attempt, RunState, Scope, evolve
from engines.core.statuses import StepStatus, WorkflowStatus

_TEXT = st.text(min_size=0, max_size=12)


class TestStepInstanceUuid:
    @given(trace=_TEXT, run=_TEXT, path=_TEXT, attempt=st.integers(1, 10_000))
    @settings(max_examples=300, deadline=None)
    def test_equals_uuid5_of_the_contract_name(self, trace: str, run: str, path: str, attempt: int) -> None:
        """The hand-rolled UUID is exactly uuid5(NAMESPACE_URL, 'shadow:trace/run/path/attempt')."""
        expected = str(uuid.uuid5(uuid.NAMESPACE_URL, f"shadow:{trace}/{run}/{path}/{attempt}"))
        assert step_instance_uuid(trace, run, path, attempt) == expected

    def test_known_value(self) -> None:
        """A fixed input keeps its fixed UUID (the cross-team contract is stable across releases)."""
        assert step_instance_uuid("t", "r", "fan[1]/x", 2) == str(
            uuid.uuid5(uuid.NAMESPACE_URL, "shadow:t/r/fan[1]/x/2")
        )


class TestEvolve:
    def test_attempt_changes_equal_dataclasses_replace(self) -> None:
        """evolve() gives the same value as dataclasses.replace() and leaves the original untouched."""
        a = Attempt("p", "p", 1, StepStatus.CREATED, 1.0, 1.0, counters=RetryCounters(1, 0, 0))
        changes = {"status": StepStatus.RUNNING, "started_at": 5.0, "note": "n"}
        assert evolve(a, changes) == dataclasses.replace(a, **changes)  # type: ignore[arg-type]
        assert a.status is StepStatus.CREATED
        assert a.started_at is None

    def test_scope_without_changes_is_an_equal_copy(self) -> None:
        """No changes: an equal but distinct object (callers rely on identity to spot changes)."""
        s = Scope("fan[0]/", "wf", {"x": 1}, 2, "fan", WorkflowStatus.IN_PROGRESS, 0.0, 60.0, waiting=("a",))
        copy = evolve(s, {})
        assert copy == s
        assert copy is not s

    def test_every_field_can_change(self) -> None:
        """Each field of Attempt is copied and overridable (a generated copier that forgot one fails)."""
        base = Attempt("p", "p", 1, StepStatus.CREATED, 1.0, 1.0)
        for f in dataclasses.fields(Attempt):
            marker = object()
            changed = evolve(base, {f.name: marker})
            assert getattr(changed, f.name) is marker
            others = [g.name for g in dataclasses.fields(Attempt) if g.name != f.name]
            assert all(getattr(changed, n) == getattr(base, n) for n in others)


class TestForeachIndexes:
    @staticmethod
    def _run() -> RunState:
        root = Scope("", "wf", {}, 1, None, WorkflowStatus.IN_PROGRESS, 0.0, 60.0)
        run = RunState(
            "t", "r", 1, WorkflowStatus.IN_PROGRESS, 0.0, scopes={"": root}, attempts={}, open_scopes=("",)
        )
        for i in range(3):
            run = run.with_scope(
                Scope(f"fan[{i}]/", "body", {}, i + 1, "fan", WorkflowStatus.IN_PROGRESS, 0.0, 60.0)
            )
        # a nested foreach inside iteration 0 and another step's child must not count as iterations of "fan"
        run = run.with_scope(
            Scope("fan[0]/in[0]/", "b2", {}, 1, "fan[0]/in", WorkflowStatus.IN_PROGRESS, 0.0, 60.0)
        )
        return run.with_scope(Scope("fan2[0]/", "body", {}, 1, "fan2", WorkflowStatus.FAILED, 0.0, 60.0))

    def test_parent_lists_failed_children_and_forgets_relaunched_ones(self) -> None:
        """A child scope turning FAILED is listed on its parent; relaunching that prefix removes it."""
        run = self._run()
        failed = run.with_scope(evolve(run.scopes["fan[1]/"], {"status": WorkflowStatus.FAILED}))
        assert failed.scopes[""].failed_children == ("fan2[0]/", "fan[1]/")
        relaunched = failed.with_scope(
            Scope("fan[1]/", "body", {}, 2, "fan", WorkflowStatus.IN_PROGRESS, 1.0, 60.0)
        )
        assert relaunched.scopes[""].failed_children == ("fan2[0]/",)

    def test_launched_iterations_equal_reading_every_scope(self) -> None:
        """The indexed view of a foreach's iterations equals reading each launched iteration's scope."""
        run = self._run()
        run = run.with_scope(evolve(run.scopes["fan[2]/"], {"status": WorkflowStatus.SUCCEEDED}))
        run = run.with_scope(evolve(run.scopes["fan[1]/"], {"status": WorkflowStatus.FAILED}))
        for launched in range(4):
            statuses = [run.scopes[f"fan[{i}]/"].status for i in range(min(launched, 3))]
            expected = (
                any(s is WorkflowStatus.FAILED for s in statuses),
                [i for i, s in enumerate(statuses) if not s.is_terminal],
            )
            assert _launched_iterations(run, "fan", min(launched, 3)) == expected
