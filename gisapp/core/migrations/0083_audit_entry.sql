-- One audit trail for the audit page and GET /api/v1/audit: the audit log (log-ins, layer and
-- planning writes, accounts, views of personal data) and the dispatch writes, which each
-- incident's append-only event log records with their actor and client (intake, dispatch,
-- assignments, leg steps, merges). Event rows get negative ids so that the two never collide.
CREATE VIEW audit_entry AS
SELECT id, at, actor, action, entity, entity_id, client, detail FROM audit_log
UNION ALL
SELECT -e.id, e.at, e.actor, 'dispatch_' || e.kind, 'incident', e.incident_id::text, e.client,
       CASE WHEN e.leg_id IS NULL THEN e.data ELSE e.data || jsonb_build_object('leg_id', e.leg_id) END
  FROM incident_event e;
