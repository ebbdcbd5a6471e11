"""The release lifecycle, read back from stack history: unfinished releases and settled states.

Every record of one release carries its release id (release.history.records). A release moves through

    stage ─▶ switch ─▶ verify                     finished: Verified
      │        │
      └────────┴────▶ rollback | abort            finished: RolledBack / Aborted

and a release with a stage or switch record but no verify, rollback or abort after it (in a succeeded
update) is **unfinished**: killed midway, or still running on another machine. Its changes may be
live and unverified. While any release of a stack is unfinished, a new deploy or promotion into that
stack is refused (release.flows.deploy_request), naming it and the commands that finish it.

A **settled** state is a succeeded update after which no release was unfinished: the state a
release verified, the state a rollback restored, or a state no release touched (a plain `pulumi up`).
Settled states are what rollbacks go back to; the intermediate entries of a release never are.
Only records that count in the stack (release.history.entries.RecordRules, and standing in its chain,
release.history.chain) take part, in the chain's order (history order), never a signer's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.text import one_line
from release.history.entries import RELEASES_KEY, HistoryEntry
from release.history.records import FINISHES, STARTS, Event

VERIFIED, ROLLED_BACK, ABORTED = "Verified", "RolledBack", "Aborted"
OUTCOME_OF = {Event.VERIFY: VERIFIED, Event.ROLLBACK: ROLLED_BACK, Event.ABORT: ABORTED}
MAX_SKIPPED_SHOWN = 12


@dataclass
class Release:
    """One release of one image to one service, as its records tell it."""

    id: str
    service: str
    image: str
    actor: str
    first: HistoryEntry
    steps: list[tuple[str, HistoryEntry]] = field(default_factory=list)
    outcome: str = ""
    """Verified, RolledBack or Aborted; '' while unfinished."""

    @property
    def unfinished(self) -> bool:
        return not self.outcome

    def describe(self) -> str:
        done = ", ".join(f"{event} in entry {entry.number} ({entry.result})" for event, entry in self.steps)
        return one_line(
            f"release {self.id} of {self.service} ({self.image}) by {self.actor}, started "
            f"{self.first.start_time[:19]}: {done}"
        )


@dataclass
class Lifecycle:
    releases: dict[str, Release]
    """Every release with an id, oldest first."""
    settled: list[HistoryEntry]
    """Settled states, newest first."""
    open_at: dict[int, list[str]]
    """For each entry (by position) after which some release was unfinished: those release ids."""

    @property
    def unfinished(self) -> list[Release]:
        return [release for release in self.releases.values() if release.unfinished]

    def newest_release_of(self, service: str) -> Release | None:
        found = [release for release in self.releases.values() if release.service == service]
        return found[-1] if found else None

    @property
    def baseline(self) -> HistoryEntry | None:
        """The newest settled state: what an automatic rollback restores."""
        return self.settled[0] if self.settled else None

    def settled_before(self, entry: HistoryEntry) -> HistoryEntry | None:
        """The newest settled state older than `entry`: the state before a release that started there."""
        for candidate in self.settled:
            if candidate.position > entry.position:
                return candidate
        return None

    def why_not_settled(self, entry: HistoryEntry) -> str:
        ids = self.open_at.get(entry.position, [])
        parts = []
        for identifier in ids:
            release = self.releases[identifier]
            state = "unfinished" if release.unfinished else f"later {release.outcome}"
            parts.append(f"{identifier} of {release.service} ({state})")
        return "an intermediate state of release " + ", ".join(parts)


def read_lifecycle(entries: Sequence[HistoryEntry]) -> Lifecycle:
    """Walk history oldest first, opening and finishing releases; collect the settled states."""
    releases: dict[str, Release] = {}
    open_ids: list[str] = []
    settled: list[HistoryEntry] = []
    open_at: dict[int, list[str]] = {}
    for entry in reversed(entries):
        record = entry.record
        if record is not None and record.release:
            release = releases.get(record.release)
            if release is None:
                release = releases[record.release] = Release(
                    record.release, record.service, record.image, record.actor, entry
                )
            release.steps.append((record.event, entry))
            if record.event in STARTS and release.unfinished and record.release not in open_ids:
                open_ids.append(record.release)
            elif record.event in FINISHES and entry.succeeded:
                _finish(release, record.event, open_ids)
        if record is not None and record.finishes and record.event in FINISHES and entry.succeeded:
            for identifier in record.finishes:
                if identifier in releases and releases[identifier].unfinished:
                    _finish(releases[identifier], record.event, open_ids)
        if open_ids:
            open_at[entry.position] = list(open_ids)
        elif entry.kind == "update" and entry.succeeded and RELEASES_KEY in entry.config:
            settled.append(entry)
    settled.reverse()
    return Lifecycle(releases, settled, open_at)


def _finish(release: Release, event: Event, open_ids: list[str]) -> None:
    release.outcome = OUTCOME_OF[event]
    if release.id in open_ids:
        open_ids.remove(release.id)


@dataclass(frozen=True)
class RollbackTarget:
    entry: HistoryEntry
    why: str
    skipped: list[str]


def choose_rollback_target(
    lifecycle: Lifecycle, entries: Sequence[HistoryEntry], differs: Callable[[HistoryEntry], bool]
) -> RollbackTarget | None:
    """The state before the current release: the newest settled state that differs from now.

    Never an intermediate entry of a failed, rolled-back or unfinished release, and never a rollback's
    own entry (it restored an older state, which is found further back). `differs(entry)` says
    whether restoring `entry` would change anything.
    """
    settled = {entry.position for entry in lifecycle.settled}
    skipped: list[str] = []
    for entry in entries:
        if entry.kind != "update" or not entry.succeeded or RELEASES_KEY not in entry.config:
            skipped.append(f"{entry.label()}: not a succeeded update that recorded the releases")
            continue
        record = entry.record
        if entry.position not in settled:
            skipped.append(f"{entry.label()}: {lifecycle.why_not_settled(entry)}")
        elif record is not None and record.event in (Event.ROLLBACK, Event.ABORT):
            skipped.append(f"{entry.label()}: a {record.event}; the state it restored is further back")
        elif not differs(entry):
            skipped.append(f"{entry.label()}: the same config as now")
        else:
            return RollbackTarget(entry, _why(entry), skipped[:MAX_SKIPPED_SHOWN])
    return None


def _why(entry: HistoryEntry) -> str:
    record = entry.record
    if record is None:
        return f"{entry.label()} is the newest earlier state no release touched (a plain update)"
    if record.event == Event.VERIFY:
        return one_line(
            f"{entry.label()} is the newest earlier state a release verified: "
            f"{record.release or 'a release'} of {record.service} ({record.image})"
        )
    return f"{entry.label()} is the newest earlier settled state (no release was unfinished there)"
