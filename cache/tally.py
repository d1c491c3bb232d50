"""The per-JobSet tally of child Jobs, kept up to date from the Job store's changes (issue 18: O(1) reconciles).

Role: a ``Store`` listener. Every insert, replace and delete of a Job record moves one Job between the buckets of
its controlling JobSet's tally (by owner UID), so a steady-state reconcile reads counts and buckets instead of
re-classifying every child. ``view(uid)`` hands out an immutable ``api.tally.ChildTally``.

Invariants:
* the tally of a UID always equals the one built from scratch over the store's owner-index bucket of that UID
  (property-tested), in the same order per bucket: a replaced Job leaves its buckets and re-enters at the end,
  exactly as the store re-indexes it;
* views list the attempts sorted by label (missing first), whatever order they appeared in;
* a re-list (``Store.replace``) clears everything and rebuilds from the fresh LIST;
* nothing here knows the JobSet: which attempt is current, and every doubt (a UID or size mismatch, an
  uninterpretable label), is settled by ``controller.decide.classify.children_from_tally``, which falls back to a
  full pass.
Cost: O(1) per Job change; ``view`` copies the buckets of each attempt that changed since the last view into
tuples (C speed, ~5 µs per thousand Jobs; an unchanged attempt hands out its last view, so the reconcile that
follows our own status write copies nothing) and hands out the cached frozenset of child names, rebuilt (C speed)
only after a child appeared, went or was renamed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from api.records import Job
from api.tally import COMPLETE, FAILED, AttemptTally, ChildTally, JobFacts, job_facts


class _Attempt:
    """The mutable buckets of one restart attempt of one JobSet."""

    __slots__ = ("active", "all", "cached", "counts", "failed", "live", "successful", "suspended")

    def __init__(self) -> None:
        self.all: dict[str, Job] = {}
        self.live: dict[str, str] = {}
        """key → name of the Jobs not being deleted."""
        self.cached: AttemptTally | None = None
        """The last view, until the next change (a reconcile with no Job change between copies nothing)."""
        self.active: dict[str, Job] = {}
        self.successful: dict[str, Job] = {}
        self.failed: dict[str, Job] = {}
        self.suspended: dict[str, Job] = {}
        self.counts: dict[str, list[int]] = {}

    def add(self, key: str, job: Job, f: JobFacts) -> None:
        self.cached = None
        self.all[key] = job
        if not f.deleting:
            self.live[key] = job.metadata.name
        row = self.counts.get(f.rjob)
        if row is None:
            row = self.counts[f.rjob] = [0, 0, 0, 0, 0, 0]
        self._count(row, f, 1)
        if f.finished == COMPLETE:
            self.successful[key] = job
        elif f.finished == FAILED:
            self.failed[key] = job
        else:
            self.active[key] = job
            if f.suspended:
                self.suspended[key] = job

    def remove(self, key: str, f: JobFacts) -> None:
        self.cached = None
        del self.all[key]
        if not f.deleting:
            del self.live[key]
        row = self.counts[f.rjob]
        self._count(row, f, -1)
        if not row[5]:
            del self.counts[f.rjob]
        if f.finished == COMPLETE:
            del self.successful[key]
        elif f.finished == FAILED:
            del self.failed[key]
        else:
            del self.active[key]
            if f.suspended:
                del self.suspended[key]

    @staticmethod
    def _count(row: list[int], f: JobFacts, step: int) -> None:
        row[5] += step
        if f.finished == COMPLETE:
            row[1] += step
        elif f.finished == FAILED:
            row[2] += step
        else:
            if f.ready:
                row[0] += step
            if f.active:
                row[3] += step
            if f.suspended:
                row[4] += step

    def view(self, attempt: str | None) -> AttemptTally:
        if self.cached is None:
            self.cached = self._view(attempt)
        return self.cached

    def _view(self, attempt: str | None) -> AttemptTally:
        return AttemptTally(
            attempt=attempt,
            jobs=tuple(self.all.values()),
            active=tuple(self.active.values()),
            successful=tuple(self.successful.values()),
            failed=tuple(self.failed.values()),
            suspended_active=tuple(self.suspended.values()),
            live=tuple(self.live.values()),
            counts={rjob: (r[0], r[1], r[2], r[3], r[4], r[5]) for rjob, r in self.counts.items()},
        )


class _Book:
    """One JobSet's attempts, the facts of each child (by store key) and the set of child names.

    The names' frozenset is cached: a Job replaced under the same name (a status change: ``removed`` then
    ``added`` of one key) leaves it valid, so a steady reconcile does not rebuild it; any other change drops it.
    """

    __slots__ = ("attempts", "facts", "frozen", "just_removed", "names")

    def __init__(self) -> None:
        self.attempts: dict[str | None, _Attempt] = {}
        self.facts: dict[str, JobFacts] = {}
        self.names: dict[str, str] = {}
        """key → name of every child."""
        self.frozen: frozenset[str] | None = None
        """``frozenset(names.values())`` when valid (see ``just_removed``)."""
        self.just_removed: tuple[str, str] | None = None
        """(key, name) of the last removal, until a re-add of the same pair shows it was a replace."""

    def name_added(self, key: str, name: str) -> None:
        self.names[key] = name
        if self.just_removed != (key, name):
            self.frozen = None
        self.just_removed = None

    def name_removed(self, key: str) -> None:
        name = self.names.pop(key)
        if self.just_removed is not None:
            self.frozen = None  # two removals in a row: the first was no replace
        self.just_removed = (key, name)

    def name_set(self) -> frozenset[str]:
        if self.just_removed is not None:
            self.frozen = None  # a removal no re-add followed
            self.just_removed = None
        if self.frozen is None:
            self.frozen = frozenset(self.names.values())
        return self.frozen


def _attempt_order(attempt: str | None) -> tuple[bool, str]:
    return (attempt is not None, attempt or "")


class ChildTallies:
    """Tallies of every JobSet's children, keyed by the controlling JobSet's UID (``owner`` of a Job)."""

    def __init__(self, owner: Callable[[Job], Iterable[str]]) -> None:
        self._owner = owner
        self._books: dict[str, _Book] = {}

    # ------------------------------------------------------------------ store listener

    def added(self, key: str, job: Job) -> None:
        facts = job_facts(job)
        for uid in self._owner(job):
            book = self._books.get(uid)
            if book is None:
                book = self._books[uid] = _Book()
            attempt = book.attempts.get(facts.attempt)
            if attempt is None:
                attempt = book.attempts[facts.attempt] = _Attempt()
            attempt.add(key, job, facts)
            book.facts[key] = facts
            book.name_added(key, job.metadata.name)

    def removed(self, key: str, job: Job) -> None:
        for uid in self._owner(job):
            book = self._books.get(uid)
            if book is None:
                continue
            facts = book.facts.pop(key, None)
            if facts is None:
                continue
            attempt = book.attempts[facts.attempt]
            attempt.remove(key, facts)
            book.name_removed(key)
            if not attempt.all:
                del book.attempts[facts.attempt]
            if not book.facts:
                del self._books[uid]

    def cleared(self) -> None:
        self._books.clear()

    # ------------------------------------------------------------------ reads

    def view(self, uid: str) -> ChildTally:
        """The tally of the JobSet with UID ``uid`` (empty when it has no children)."""
        book = self._books.get(uid)
        if book is None:
            return ChildTally(uid=uid, size=0, attempts=(), names=frozenset())
        return ChildTally(
            uid=uid,
            size=len(book.facts),
            attempts=tuple(book.attempts[name].view(name) for name in sorted(book.attempts, key=_attempt_order)),
            names=book.name_set(),
        )

    def __len__(self) -> int:
        return len(self._books)
