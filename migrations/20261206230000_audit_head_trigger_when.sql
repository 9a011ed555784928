-- The head's forward-only check moves into the trigger's WHEN condition: PostgreSQL evaluates it
-- inline and calls the PL/pgSQL function only to refuse a backward move, where it called it on
-- every append (a tenth of PostgreSQL's CPU per append, measured with scripts/bench-pg-append).
-- DELETE keeps a trigger of its own that always refuses.
DROP TRIGGER audit_head_forward ON audit_head;
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
    FOR EACH ROW WHEN (NEW.seq < OLD.seq) EXECUTE FUNCTION audit_head_forward_only();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only();
