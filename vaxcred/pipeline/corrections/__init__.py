"""Corrections (phản ánh): a citizen asks for a record to be fixed; the site that recorded it answers in 48 hours.

States (``corrections.state``; nothing else, and never back)::

              file_correction                resolve_correction (applies the change)
    (citizen) ───────────────▶  OPEN  ──────────────────────────────────────────────▶  RESOLVED
                                 │    due_at = filed_at + 48 h
                                 │            reject_correction (a note says why)
                                 └──────────────────────────────────────────────────▶  REJECTED

**What can be corrected.** :class:`CorrectionField`: the person's ``full_name``, ``dob``, ``gender``; a dose's
``vaccine``, ``lot``, ``date``, ``dose_number``; and ``missing_dose``, a dose the site gave but never recorded
(seed 004), whose proposed value is the new dose: ``{"vaccine", "lot", "date", "dose_number", "site_id"}``;
and ``duplicate``, which withdraws the named dose record (a duplicate entry, or one recorded by mistake) and
takes no proposed value (stored as ``"withdraw"``).
A proposed value is checked with the import parser (:func:`vaxcred.pipeline.records.model.parse_row`) on the stored
record with that one field replaced — a date of birth must still agree with the CCCD, a dose date must not be
before the birth, a vaccine must be known — and stored in its canonical form (NFC name, ``M``/``F``, the
canonical vaccine). A value equal to the stored one, an empty value, or a change that would give a dose the
natural key of another dose is refused. Errors are :class:`~vaxcred.pipeline.errors.PipelineError`:

====================================  ================================================================
``pipeline.bad_correction``           unknown field, or a proposed value that import would refuse
                                      (``field`` names it); messages hold no personal value
``pipeline.unknown_record``           no such citizen, dose (for that citizen), site or correction
``pipeline.correction_closed``        the correction is resolved or rejected already
``pipeline.correction_conflict``      the change collides with another stored dose (natural key), or the
                                      missing dose has been recorded meanwhile, or the record to withdraw
                                      contradicts nothing any more: reject the correction
``pipeline.dose_withdrawn``           the named dose was withdrawn: no correction applies to it (filing;
                                      resolving a dose-field or ``duplicate`` correction filed before)
``pipeline.bad_passport``             the stored HC1 of the passport to revoke does not decode
====================================  ================================================================

**Withdrawing a record** (``duplicate``; contradictory histories, :mod:`vaxcred.pipeline.records.history`).
A record may be withdrawn only while it is in force and contradicts another record in force of the same person
(the same dose number again — on another day or at another site — or a dose number out of order with its
date): withdrawing it removes a contradiction. Withdrawing a record that contradicts nothing (the only record of
its dose number in a consistent history) is refused, ``pipeline.bad_correction``: it would resolve nothing and
lose a dose; so is withdrawing the second record of a pair once the first is withdrawn (at resolution:
``pipeline.correction_conflict``, the correction stays open to be rejected) — a person always keeps a record of
each dose. A withdrawn record is never deleted: ``doses.withdrawn_at`` is set and the resolved correction
(dose, site, times) is its audit trail; its natural key stays taken (a re-import does not bring it back).
Every reader takes records in force only: the history check and issuance, site signing's queue, the
certificate data, the data-quality report, :func:`recorded_doses` (which lists withdrawn records, marked).
Which correction resolves which contradiction:

======================================  ====================================================================
dose 3 dated before dose 1              ``date`` (or ``dose_number``) of the wrong record; ``duplicate`` if
                                        the record should not exist at all
two dose-1 records on different days    ``duplicate`` on the record that should not exist (or ``date`` /
                                        ``dose_number`` if it is really another dose)
the same dose at two sites              ``duplicate`` on one of them, routed to the site that recorded it
======================================  ====================================================================

**Routing.** Each correction names a dose (by id or by natural key); it goes to the site that recorded that
dose (``corrections.site_id``), also for person fields: the citizen reads the error on that site's record.
A missing dose goes to the site named in it (that site must exist) and is attached to the person's newest
recorded dose (``corrections.dose_id`` is NOT NULL), or to the dose given. Filing is idempotent: the same
open correction (dose, field, canonical value) filed again returns the existing id and keeps its clock.

**Resolution** (:func:`resolve_correction`), in one transaction:

0. on PostgreSQL the transaction first takes site signing's lock exclusive
   (:func:`vaxcred.pipeline.site_signing.stage.lock_out_signing`; a signing store holds it shared from its
   member INSERT to its commit): a store in flight commits first (and its signature of the named dose is
   superseded in 3), a later one waits for this commit and finds the rows changed;
1. the correction moves ``OPEN → RESOLVED`` under its row lock (``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE``
   serialises writers): of two concurrent resolutions one wins, the other gets ``pipeline.correction_closed``.
   The person's row and current site signatures are locked ``FOR UPDATE`` too: an issuance commit holding the
   person (``FOR KEY SHARE``, taken before its re-check) finishes first (and its passport is revoked in step
   4), or waits and finds its inputs changed and stores nothing. The proposed value is validated again on the current data;
2. the change is applied (a ``duplicate``: the person's records in force are locked ``FOR UPDATE``, the
   withdrawal is checked again on them, and ``withdrawn_at`` is set); or the person row (its ``registry_status`` reset to NULL — unchecked — so that a crash
   before step 5 leaves the person in the registry stage's queue; site signing takes ``VERIFIED`` persons only,
   so nothing is signed or issued on the stale result), the dose row, or a new dose row (dose fields leave the
   registry status as it is: the registry compares person fields only). On PostgreSQL a person-field change first
   gives every dose in force of the person a new row version (locked in id order, a no-op UPDATE): site signing's
   store keeps a signature only for dose rows still at the version its batch read, so a later store re-reads the
   person and leaves them out (with the lock of step 0 the person row's own new version would do; the dose
   versions are kept as a second line);
3. the current site signature of the dose the correction names is superseded
   (:func:`vaxcred.pipeline.site_signing.stage.supersede_signature`): the site signs the corrected record again in
   the next site-signing run, and issuance waits for that (a new missing dose has no signature yet either);
4. if the person holds an ``ACTIVE`` passport it is revoked — for a ``duplicate`` only if the passport was
   issued on the withdrawn record (``passport_doses``; one issued before the record was imported stays
   valid) — (:func:`revoke_active_passport`): status
   ``revoked``, ``revoked_at``, and ``revocations`` rows by ``UCI`` and ``SIGNATURE`` hash (from the stored
   HC1: ``ci``, ``co``, COSE signature and algorithm), under the passport's kid, kept until its ``exp``,
   reason ``"correction <id>"``;

   — commit —

5. the registry check runs again for that person (:func:`vaxcred.pipeline.registry.check.run_registry_check`
   with ``person_ids=[…]``); a registry failure propagates but loses nothing (see 2);
6. ``reissue(person_id)``, when given and a passport was revoked, may re-sign and re-issue at once; without it
   the next site-signing and issuance runs do it.

**The successor link.** There is no "pending" marker: a person is waiting for a successor exactly when they
hold no ``ACTIVE`` passport and a ``REVOKED`` one that no passport ``supersedes``
(:func:`pending_reissues`). The next passport issued to them stores ``supersedes`` = that passport
(:func:`predecessors_of`, for the issuance commit to call in the transaction that stores the new passports —
the unique index on ACTIVE passports means only one can take the link; :func:`link_successors` sets the link
afterwards for passports stored without it, idempotently). The revocation rows name the correction
(``reason``), so correction → revoked passport → successor is traceable.

Time is always a parameter (``now``, aware). Proposed values are personal data: :class:`Correction` masks them.
"""

from __future__ import annotations

from vaxcred.pipeline.corrections.filing import file_correction
from vaxcred.pipeline.corrections.listings import (
    RecordedDose,
    get_correction,
    open_corrections,
    overdue_report,
    recorded_doses,
)
from vaxcred.pipeline.corrections.model import (
    BAD_CORRECTION,
    CORRECTION_CLOSED,
    CORRECTION_CONFLICT,
    DOSE_FIELDS,
    DOSE_WITHDRAWN,
    MISSING_DOSE_FIELDS,
    PERSON_FIELDS,
    RESPONSE_TIME,
    REVOCATION_HASH_TYPES,
    UNKNOWN_RECORD,
    WITHDRAW,
    Correction,
    CorrectionField,
    DoseKey,
    OverdueSite,
    Resolution,
)
from vaxcred.pipeline.corrections.resolution import (
    reject_correction,
    resolve_correction,
    revoke_active_passport,
)
from vaxcred.pipeline.corrections.successors import (
    link_successors,
    pending_reissues,
    predecessor_of,
    predecessors_of,
)
from vaxcred.pipeline.reports.revocation_export import BAD_PASSPORT

__all__ = [
    "BAD_CORRECTION",
    "BAD_PASSPORT",
    "CORRECTION_CLOSED",
    "CORRECTION_CONFLICT",
    "DOSE_FIELDS",
    "DOSE_WITHDRAWN",
    "MISSING_DOSE_FIELDS",
    "PERSON_FIELDS",
    "RESPONSE_TIME",
    "REVOCATION_HASH_TYPES",
    "UNKNOWN_RECORD",
    "WITHDRAW",
    "Correction",
    "CorrectionField",
    "DoseKey",
    "OverdueSite",
    "RecordedDose",
    "Resolution",
    "file_correction",
    "get_correction",
    "link_successors",
    "open_corrections",
    "overdue_report",
    "pending_reissues",
    "predecessor_of",
    "predecessors_of",
    "recorded_doses",
    "reject_correction",
    "resolve_correction",
    "revoke_active_passport",
]
