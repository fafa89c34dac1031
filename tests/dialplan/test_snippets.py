"""The shipped dialplan snippets, read the way Asterisk's pbx_config reads them.

No Asterisk here, so these tests hold the snippets to what its config parser and ``Goto`` need:
every context, extension and label a jump names exists, priorities run ``1, n, n, ...``, and the
fail-closed shape of the gate contexts (a call that callshield did not allow never returns to the
caller's ``Dial()``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files

import pytest

SNIPPET = "extensions_callshield.conf"
JUMP = re.compile(r"\b(Goto|GotoIf|Gosub)\((.*)\)\s*$")
LINE = re.compile(r"^(exten|same)\s*=>\s*(.*)$")


@dataclass(frozen=True)
class Step:
    context: str
    exten: str
    label: str | None
    app: str
    data: str


def parse(text: str) -> list[Step]:
    """The steps of every context, in order; raises on a line pbx_config would reject."""
    steps: list[Step] = []
    context = ""
    exten = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            context = line[1:-1]
            continue
        match = LINE.match(line)
        assert match and context, f"line {number}: not an extension line: {raw!r}"
        kind, rest = match.groups()
        if kind == "exten":
            exten, priority, rest = rest.split(",", 2)
            assert priority == "1", f"line {number}: an extension starts at priority 1"
        else:
            assert exten, f"line {number}: 'same' before any 'exten'"
            priority, rest = rest.split(",", 1)
            assert re.fullmatch(r"n(\([a-z-]+\))?", priority), f"line {number}: {priority}"
        label = re.search(r"\(([a-z-]+)\)", priority)
        app, _, data = rest.partition("(")
        steps.append(Step(context, exten, label.group(1) if label else None, app, data[:-1]))
    return steps


@pytest.fixture(scope="module")
def steps() -> list[Step]:
    return parse(files("callshield.dialplan").joinpath(SNIPPET).read_text())


def context_steps(steps: list[Step], context: str) -> list[Step]:
    found = [step for step in steps if step.context == context]
    assert found, f"no context {context}"
    return found


def jump_targets(step: Step) -> list[str]:
    """The ``context,exten,priority`` / label targets of a jump, variables left in."""
    if step.app == "GotoIf":
        _, _, branches = step.data.partition("?")
        return [target for target in branches.split(":") if target]
    if step.app in ("Goto", "Gosub"):
        return [step.data]
    return []


def resolve(steps: list[Step], step: Step, target: str) -> None:
    """Assert that ``target`` (as Asterisk would read it from ``step``) exists."""
    parts = re.sub(r"\(.*\)$", "", target).split(",")
    if len(parts) == 1:  # a label in the same extension
        labels = {s.label for s in steps if (s.context, s.exten) == (step.context, step.exten)}
        assert parts[0] in labels, f"{step.context}: no label {parts[0]}"
        return
    context, exten, priority = parts
    if context.startswith("${"):
        return  # the operator's own context, named by a variable
    assert priority == "1"
    extens = {s.exten for s in context_steps(steps, context)}
    assert exten in extens or (exten == "${EXTEN}" and any(e.startswith("_") for e in extens))


def test_every_jump_lands_on_something_that_exists(steps: list[Step]) -> None:
    jumps = [(step, target) for step in steps for target in jump_targets(step)]
    assert len(jumps) > 15
    for step, target in jumps:
        resolve(steps, step, target)


def test_parser_rejects_a_jump_to_a_missing_label(steps: list[Step]) -> None:
    gate = context_steps(steps, "callshield-gate")[0]
    with pytest.raises(AssertionError, match="no label"):
        resolve(steps, gate, "nowhere")
    with pytest.raises(AssertionError, match="no context"):
        resolve(steps, gate, "callshield-nothing,s,1")


@pytest.mark.parametrize("context", ["callshield-gate", "callshield-gate-agi"])
def test_gate_returns_only_through_the_allow_label(steps: list[Step], context: str) -> None:
    """One Return(), reached from the ``allow`` label without a jump, and nothing falls into it."""
    body = context_steps(steps, context)
    returns = [i for i, step in enumerate(body) if step.app == "Return"]
    assert len(returns) == 1
    start = [step.label for step in body].index("allow")
    assert start <= returns[0]
    assert all(step.app == "Set" for step in body[start : returns[0]])
    assert body[start - 1].app in ("Goto", "Hangup"), "a step falls through into allow"
    defaults = [step.data for step in body[:6] if step.app == "Set"]
    assert {"SHIELD_RESULT=BLOCK", "SHIELD_REASON=error"} <= set(defaults)


def test_ari_gate_jumps_to_allow_only_from_allow_labels(steps: list[Step]) -> None:
    body = context_steps(steps, "callshield-gate")
    for i, step in enumerate(body):
        if step.app == "Goto" and step.data == "allow":
            assert (body[i - 1].label or "").startswith("allow-")
    allow = body[[step.label for step in body].index("allow")]
    assert allow.data == "SHIELD_RESULT=ALLOW"


def test_agi_gate_jumps_to_allow_only_on_an_allow_verdict(steps: list[Step]) -> None:
    body = context_steps(steps, "callshield-gate-agi")
    into_allow = [step for step in body if "allow" in jump_targets(step)]
    assert [step.data for step in into_allow] == ['$["${SHIELD_RESULT}" = "ALLOW"]?allow']


def test_stasis_falling_through_blocks(steps: list[Step]) -> None:
    """Stasis returns on its own when the app is not connected: the next step must block."""
    body = context_steps(steps, "callshield-gate")
    after = body[[step.app for step in body].index("Stasis") + 1]
    assert (after.app, after.data) == ("Goto", "block")


def test_agi_failure_blocks_before_any_allow(steps: list[Step]) -> None:
    body = context_steps(steps, "callshield-gate-agi")
    agi = [step.app for step in body].index("AGI")
    check = body[agi + 1]
    assert check.app == "GotoIf"
    assert check.data == '$["${AGISTATUS}" != "SUCCESS"]?block'


@pytest.mark.parametrize(
    ("context", "gate"),
    [("callshield-outbound", "callshield-gate"), ("callshield-outbound-agi", "callshield-gate-agi")],
)
def test_outbound_dials_only_after_the_gate(steps: list[Step], context: str, gate: str) -> None:
    first, then = context_steps(steps, context)
    assert first.app == "Gosub"
    assert first.data.startswith(f"{gate},s,1(${{EXTEN}},")
    assert (then.app, then.data) == ("Goto", "callshield-outbound-dial,${EXTEN},1")
    dial = context_steps(steps, "callshield-outbound-dial")
    assert [step.app for step in dial].count("Dial") == 1
    assert dial[-1].app == "Hangup"
