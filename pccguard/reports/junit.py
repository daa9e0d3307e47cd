"""``--format junit``: JUnit XML, so any CI system shows the checks as tests.

One ``<testsuite name="pccguard.S">`` per PCC requirement (all five, so a
requirement without rules is visibly empty rather than absent) and one
``<testcase>`` per rule. Verdicts map onto what CI systems understand:

* ``fail`` at or above ``--fail-on`` → ``<failure type="<severity>">``; so is
  ``declared`` (a mitigation the facts only claim), its message saying so;
  ``error`` → ``<error>``: the engine gave no decision, which CI must not count
  as a pass;
* ``fail`` or ``declared`` below ``--fail-on`` → a passing test whose ``<system-out>`` says so
  with the findings: the exit status ignores it, so a CI gate reading the XML
  must too (the same decision, ``Report.failing()``, drives both);
* ``not_applicable`` and ``waived`` → ``<skipped>`` with the reason (for a
  waiver: justification, owner and expiry, so the accepted risk stays visible);
* ``warn`` and ``enforced`` → a passing test with the findings in
  ``<system-out>``: they do not fail the run, but the reader should see them.

Report problems that belong to no rule (a malformed or expired waiver, an
engine failure) make the run fail, so when there are any they appear as one
more suite, ``pccguard.problems``, with one failing test per problem.

ElementTree escapes markup; what it cannot escape (characters XML 1.0 forbids,
such as NUL or ESC from a facts value) is written out as ``\\xNN`` first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from pccguard.evaluation.results import Report, RuleResult, Verdict
from pccguard.facts.catalog import LETTERS
from pccguard.reports._common import (
    below_fail_on_note,
    clean,
    deployment_label,
    details,
    first_location,
    headline,
    location_label,
    one_line,
    override_note,
    requirement_summaries,
    results_by_id,
)

# Beyond what ``clean`` handles: the two non-characters and lone surrogates.
_XML_ILLEGAL = re.compile("[\ufffe\uffff\ud800-\udfff]")


def xml_text(text: str) -> str:
    """Text that XML 1.0 can carry (``clean`` plus the code points XML forbids outright)."""
    return _XML_ILLEGAL.sub(lambda m: f"\\u{ord(m.group(0)):04x}", clean(text))


class _Counts:
    """Test counts of one suite, in JUnit's terms."""

    def __init__(self) -> None:
        self.tests = 0
        self.failures = 0
        self.errors = 0
        self.skipped = 0

    def add(self, other: _Counts) -> None:
        self.tests += other.tests
        self.failures += other.failures
        self.errors += other.errors
        self.skipped += other.skipped

    def apply(self, element: ET.Element) -> None:
        element.set("tests", str(self.tests))
        element.set("failures", str(self.failures))
        element.set("errors", str(self.errors))
        element.set("skipped", str(self.skipped))


def _body(result: RuleResult) -> str:
    lines = list(details(result))
    location = first_location(result)
    if location is not None:
        lines.append(f"Location: {location_label(location)}")
    if result.verdict in (Verdict.FAIL, Verdict.DECLARED, Verdict.WARN) and result.rule.remediation:
        lines.append(f"Remediation: {result.rule.remediation}")
    lines.append(f"Mitigation: {result.rule.mitigation}")
    return xml_text("\n".join(lines))


def _testcase(suite: ET.Element, report: Report, result: RuleResult, counts: _Counts) -> None:
    letter = result.rule.requirement
    case = ET.SubElement(
        suite,
        "testcase",
        {"classname": f"pccguard.{letter}", "name": xml_text(f"{result.id} {result.rule.title}")},
    )
    location = first_location(result)
    if location is not None and location.uri:
        case.set("file", xml_text(location.uri))
        if location.line:
            case.set("line", str(location.line))
    counts.tests += 1
    verdict = result.verdict
    # Attributes are shown on one line by most CI systems; the full text goes in the element body.
    message = xml_text(one_line(headline(result) or result.rule.title))
    below_threshold = below_fail_on_note(report, result)
    if below_threshold is not None:
        out = ET.SubElement(case, "system-out")
        out.text = xml_text(f"{verdict.value.upper()} ({below_threshold})\n") + _body(result)
    elif verdict in (Verdict.FAIL, Verdict.DECLARED):
        counts.failures += 1
        failure = ET.SubElement(case, "failure", {"type": xml_text(result.severity), "message": message})
        failure.text = _body(result)
    elif verdict == Verdict.ERROR:
        counts.errors += 1
        error = ET.SubElement(case, "error", {"type": "engine-error", "message": message})
        error.text = _body(result)
    elif verdict == Verdict.NOT_APPLICABLE:
        counts.skipped += 1
        ET.SubElement(case, "skipped", {"message": "not applicable"})
    elif verdict == Verdict.WAIVED:
        counts.skipped += 1
        waiver = result.waiver
        reason = (
            f"waived: {waiver.justification} (owner {waiver.owner}, expires {waiver.expires})"
            if waiver is not None
            else f"waived: {result.reason or ''}"
        )
        skipped = ET.SubElement(case, "skipped", {"message": xml_text(one_line(reason))})
        skipped.text = _body(result)
    elif verdict in (Verdict.WARN, Verdict.ENFORCED):
        out = ET.SubElement(case, "system-out")
        out.text = xml_text(f"{verdict.value.upper()}\n") + _body(result)


def _mark_override(case: ET.Element, result: RuleResult) -> None:
    """A custom rule that replaced a shipped one says so: a testcase property and, when the case
    has no body that already carries the note (a pass, say), a ``<system-out>`` line."""
    text = override_note(result)
    if text is None:
        return
    props = ET.Element("properties")
    _property(props, "overrides", result.rule.overrides or "")
    _property(props, "rule_file", result.rule.path)
    case.insert(0, props)
    if all(case.find(tag) is None for tag in ("system-out", "failure", "error", "skipped")):
        ET.SubElement(case, "system-out").text = xml_text(text)
    elif (skipped := case.find("skipped")) is not None and not skipped.text:
        skipped.text = xml_text(text)


def _property(parent: ET.Element, name: str, value: str) -> None:
    ET.SubElement(parent, "property", {"name": name, "value": xml_text(value)})


def render_junit(report: Report) -> str:
    """JUnit XML text with an XML declaration; suites in S, E, T, P, V order, cases by rule id."""
    root = ET.Element("testsuites", {"name": "pccguard"})
    total = _Counts()
    titles = {s.letter: s for s in requirement_summaries(report)}
    results = results_by_id(report)
    for letter in LETTERS:
        summary = titles.get(letter)
        suite = ET.SubElement(root, "testsuite", {"name": f"pccguard.{letter}"})
        props = ET.SubElement(suite, "properties")
        _property(props, "requirement", summary.title if summary else letter)
        _property(props, "verdict", summary.verdict.value if summary else Verdict.NOT_APPLICABLE.value)
        _property(props, "deployment", deployment_label(report))
        _property(props, "profile", report.profile)
        _property(props, "policy_engine", report.engine)
        _property(props, "fail_on", report.fail_on)
        counts = _Counts()
        for result in results:
            if result.rule.requirement == letter:
                _testcase(suite, report, result, counts)
                _mark_override(suite[-1], result)
        counts.apply(suite)
        total.add(counts)
    if report.problems:
        suite = ET.SubElement(root, "testsuite", {"name": "pccguard.problems"})
        counts = _Counts()
        for index, problem in enumerate(report.problems, start=1):
            case = ET.SubElement(
                suite, "testcase", {"classname": "pccguard.problems", "name": f"problem {index}"}
            )
            failure = ET.SubElement(
                case, "failure", {"type": "problem", "message": xml_text(one_line(problem))}
            )
            failure.text = xml_text(problem)
            counts.tests += 1
            counts.failures += 1
        counts.apply(suite)
        total.add(counts)
    total.apply(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
