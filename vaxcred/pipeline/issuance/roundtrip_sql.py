"""The SQL of issuance's one round trip per batch on PostgreSQL (:mod:`~vaxcred.pipeline.issuance.roundtrip`):
the PL/pgSQL function each worker creates in its session's ``pg_temp`` (:data:`FUNCTION`), and its call
(:data:`CALL`). The steps, the locks and the guarantees are described in ``roundtrip``; this module holds only
the text, built from state names (constants), never from data.
"""

from __future__ import annotations

from typing import Final

from vaxcred.pipeline import log
from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.storage.schema import ClaimState, PassportStatus

__all__ = ["CALL", "FUNCTION"]

_CLAIMED: Final = ClaimState.CLAIMED.value
_DONE: Final = ClaimState.DONE.value
_ACTIVE: Final = PassportStatus.ACTIVE.value
_REVOKED: Final = PassportStatus.REVOKED.value
_VERIFIED: Final = RegistryStatus.VERIFIED.value

#: the function: its SQL is built only from the constants above (state names), never from data
FUNCTION: Final = f"""
CREATE OR REPLACE FUNCTION pg_temp.vaxcred_issuance_batch(
    p_worker text, p_at timestamptz, p_stale_before timestamptz, p_run_started timestamptz,
    p_cursor bigint, p_limit integer,
    p_claimed bigint[],
    s_person bigint[], s_passport bigint[], s_uvci text[], s_hc1 text[], s_kid bytea[],
    s_iat timestamptz[], s_exp timestamptz[], s_check bigint[], s_supersedes bigint[],
    s_entry bytea[], s_leaf bytea[],
    l_person bigint[], l_passport bigint[], l_dose bigint[], l_sig bigint[],
    p_issued_at timestamptz
) RETURNS TABLE (
    r_kind text, r_person bigint, r_passport bigint, r_citizen text, r_name text, r_dob text,
    r_check bigint, r_check_status text, r_supersedes bigint,
    r_dose bigint, r_dose_number integer, r_date date, r_site text, r_vaccine text, r_lot text,
    r_sig bigint, r_sig_site text, r_certificate bytea, r_kid bytea, r_cose bytea,
    r_leaf_index integer, r_proof bytea, r_head bytea
) LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET enable_material = off
AS $fn$
DECLARE
    v_ids bigint[];
    v_got bigint[];
    v_passports bigint[];
    v_sequence regclass;
    v_done bigint[];
    v_drop bigint[];
    v_current bigint[];
    v_stale bigint[];
    v_inserted bigint[];
    v_base bigint;
BEGIN
    -- (1) claim the next batch (p_limit = 0: none)
    IF p_limit > 0 THEN
        v_ids := ARRAY(
            SELECT p.id FROM persons p
            WHERE p.registry_status = '{_VERIFIED}' AND p.id > p_cursor
              AND NOT EXISTS (SELECT 1 FROM passports a WHERE a.person_id = p.id AND a.status = '{_ACTIVE}')
              AND NOT EXISTS (
                  SELECT 1 FROM issuance_claims c WHERE c.person_id = p.id AND (
                      (c.state = '{_CLAIMED}' AND (c.claimed_at > p_stale_before OR c.claimed_at >= p_run_started))
                      OR (c.state = '{_DONE}' AND c.claimed_at >= p_run_started)))
            ORDER BY p.id LIMIT p_limit
            FOR NO KEY UPDATE OF p SKIP LOCKED);
        IF cardinality(v_ids) > 0 THEN
            r_kind := 'cursor';
            r_person := v_ids[cardinality(v_ids)];
            RETURN NEXT;
            -- the authority on claims: a row is taken only while free, judged on the newest committed row
            WITH got AS (
                INSERT INTO issuance_claims AS c (person_id, state, worker, claimed_at)
                SELECT id, '{_CLAIMED}', p_worker, p_at FROM unnest(v_ids) AS id
                ON CONFLICT (person_id) DO UPDATE
                    SET state = excluded.state, worker = excluded.worker, claimed_at = excluded.claimed_at
                    WHERE NOT (
                        (c.state = '{_CLAIMED}' AND (c.claimed_at > p_stale_before OR c.claimed_at >= p_run_started))
                        OR (c.state = '{_DONE}' AND c.claimed_at >= p_run_started))
                RETURNING c.person_id)
            SELECT coalesce(array_agg(person_id ORDER BY person_id), '{{}}') INTO v_got FROM got;
            v_sequence := pg_get_serial_sequence('passports', 'id')::regclass;
            v_passports := ARRAY(SELECT nextval(v_sequence) FROM generate_series(1, cardinality(v_got)));
            RETURN QUERY
            SELECT 'person', g.person_id, g.passport_id, p.citizen_id::text, p.full_name::text, p.dob::text,
                   chk.id, chk.status::text, pred.id,
                   d.id, d.dose_number::integer, d.date, d.site_id::text, d.vaccine::text, d.lot::text,
                   s.id, coalesce(b.site_id, s.site_id)::text, coalesce(b.certificate, s.certificate),
                   coalesce(b.kid, s.kid), s.cose, s.leaf_index, s.proof, b.head
            FROM unnest(v_got, v_passports) AS g(person_id, passport_id)
            JOIN persons p ON p.id = g.person_id
            LEFT JOIN LATERAL (
                SELECT r.id, r.status FROM registry_checks r WHERE r.person_id = g.person_id
                ORDER BY r.id DESC LIMIT 1) AS chk ON true
            LEFT JOIN LATERAL (
                SELECT max(q.id) AS id FROM passports q
                WHERE q.person_id = g.person_id AND q.status = '{_REVOKED}'
                  AND NOT EXISTS (SELECT 1 FROM passports n WHERE n.supersedes = q.id)) AS pred ON true
            LEFT JOIN doses d ON d.person_id = g.person_id AND d.withdrawn_at IS NULL
            LEFT JOIN site_signatures s ON s.dose_id = d.id AND s.superseded_at IS NULL
            LEFT JOIN site_signature_batches b ON b.id = s.batch_id
            ORDER BY g.person_id, d.id;
        END IF;
    END IF;

    -- (2) store the signed batch: only our own claims turn done
    IF cardinality(p_claimed) > 0 THEN
        WITH done AS (
            UPDATE issuance_claims SET state = '{_DONE}', claimed_at = p_at
            WHERE person_id = ANY(p_claimed) AND worker = p_worker AND state = '{_CLAIMED}'
            RETURNING person_id)
        SELECT coalesce(array_agg(person_id), '{{}}') INTO v_done FROM done;
        r_kind := 'claim.lost';
        v_drop := '{{}}';
        FOR r_person IN SELECT unnest(s_person) EXCEPT SELECT unnest(v_done) LOOP
            v_drop := v_drop || r_person;
            RETURN NEXT;
        END LOOP;
        -- the persons stored, KEY SHARE (the lock the passports' foreign key takes, taken before the re-check):
        -- a correction takes its person FOR UPDATE first, so it waits for this transaction (and revokes what
        -- it stored), or this waits for it and the re-check below (a fresh snapshot) sees its change
        PERFORM 1 FROM persons WHERE id = ANY(s_person) AND NOT (id = ANY(v_drop)) ORDER BY id FOR KEY SHARE;
        v_current := ARRAY(SELECT id FROM site_signatures WHERE id = ANY(l_sig) AND superseded_at IS NULL);
        v_stale := ARRAY(SELECT unnest(l_sig) EXCEPT SELECT unnest(v_current));
        r_kind := 'record.changed';
        FOR r_person IN
            WITH cur AS MATERIALIZED (
                SELECT d.person_id, d.id FROM doses d
                WHERE d.person_id = ANY(s_person) AND d.withdrawn_at IS NULL),
            relied AS MATERIALIZED (SELECT * FROM unnest(l_person, l_dose) AS l(person_id, id))
            SELECT changed.person_id FROM (
                SELECT l.person_id FROM unnest(l_person, l_sig) AS l(person_id, sig_id)
                WHERE l.sig_id = ANY(v_stale)
                UNION
                SELECT x.person_id FROM (
                    (SELECT * FROM cur EXCEPT SELECT * FROM relied)
                    UNION ALL
                    (SELECT * FROM relied EXCEPT SELECT * FROM cur)) AS x
                UNION
                SELECT s.person_id FROM unnest(s_person, s_check) AS s(person_id, check_id)
                WHERE s.check_id IS DISTINCT FROM (
                    SELECT max(r.id) FROM registry_checks r WHERE r.person_id = s.person_id)
                UNION
                SELECT s.person_id FROM unnest(s_person, s_supersedes) AS s(person_id, supersedes)
                WHERE s.supersedes IS DISTINCT FROM (
                    SELECT max(q.id) FROM passports q
                    WHERE q.person_id = s.person_id AND q.status = '{_REVOKED}'
                      AND NOT EXISTS (SELECT 1 FROM passports n WHERE n.supersedes = q.id))
            ) AS changed
            WHERE NOT (changed.person_id = ANY(v_drop))
        LOOP
            v_drop := v_drop || r_person;
            RETURN NEXT;
        END LOOP;
        WITH ins AS (
            INSERT INTO passports
                (id, person_id, uvci, hc1, kid, iat, exp, issued_at, status, registry_check_id, supersedes)
            SELECT s.passport_id, s.person_id, s.uvci, s.hc1, s.kid, s.iat, s.exp, p_issued_at, '{_ACTIVE}',
                   s.check_id, s.supersedes
            FROM unnest(s_person, s_passport, s_uvci, s_hc1, s_kid, s_iat, s_exp, s_check, s_supersedes)
                AS s(person_id, passport_id, uvci, hc1, kid, iat, exp, check_id, supersedes)
            WHERE NOT (s.person_id = ANY(v_drop))
            ORDER BY s.person_id
            ON CONFLICT (person_id) WHERE status = '{_ACTIVE}' DO NOTHING
            RETURNING person_id)
        SELECT coalesce(array_agg(person_id), '{{}}') INTO v_inserted FROM ins;
        r_kind := 'passport.already_active';
        FOR r_person IN SELECT unnest(s_person) EXCEPT SELECT unnest(v_drop) EXCEPT SELECT unnest(v_inserted)
        LOOP
            v_drop := v_drop || r_person;
            RETURN NEXT;
        END LOOP;
        INSERT INTO passport_doses (passport_id, dose_id, site_signature_id)
        SELECT l.passport_id, l.dose_id, l.sig_id
        FROM unnest(l_person, l_passport, l_dose, l_sig) AS l(person_id, passport_id, dose_id, sig_id)
        WHERE NOT (l.person_id = ANY(v_drop));
        -- the log: gap-free leaf indexes under the log_state row lock, taken last (held only to the commit)
        IF cardinality(v_inserted) > 0 THEN
            UPDATE log_state SET size = size + cardinality(v_inserted) WHERE id = 1
            RETURNING size - cardinality(v_inserted) INTO v_base;
            INSERT INTO issuance_log (seq, kind, object_id, entry, leaf_hash, logged_at)
            SELECT v_base + row_number() OVER (ORDER BY s.passport_id) - 1, '{log.Kind.PASSPORT.value}',
                   s.passport_id, s.entry, s.leaf, p_issued_at
            FROM unnest(s_person, s_passport, s_entry, s_leaf) AS s(person_id, passport_id, entry, leaf)
            WHERE NOT (s.person_id = ANY(v_drop));
        END IF;
    END IF;
END
$fn$
"""  # noqa: S608

#: the call; its array parameters go in binary (``%b``): psycopg writes a text-format array element by element in
#: Python, quoting and escaping each (~20 µs for an HC1 string, ~5 for a timestamp, ~4 for a bytea), and a
#: binary one with a length prefix per element (~0.15 µs); the server receives the same values either way. The
#: worker builds each array's binary form itself (:mod:`~vaxcred.storage.pg_arrays`: one pack per
#: element, no per-element dumper lookup), typed bigint[], text[], bytea[], timestamptz[] as the casts say
CALL: Final = (
    "SELECT * FROM pg_temp.vaxcred_issuance_batch("
    "%s, %s, %s, %s, %s, %s, %b::bigint[], "
    "%b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::bytea[], "
    "%b::timestamptz[], %b::timestamptz[], %b::bigint[], %b::bigint[], %b::bytea[], %b::bytea[], "
    "%b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[], %s)"
)
