-- Delegation (X-On-Behalf-Of, Slack): `subject` is the person the action is for; `delegated_by`
-- is the bot that sent it ("issuer/subject"). NULL when a caller acts for itself. Entries written
-- before this column existed hash exactly as before (the field is left out of the canonical form
-- when NULL).
ALTER TABLE audit_event ADD COLUMN delegated_by text;
CREATE INDEX audit_event_delegated_by ON audit_event (delegated_by, seq DESC) WHERE delegated_by IS NOT NULL;
