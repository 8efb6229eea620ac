-- Tell API servers that cache access-token lookups (sim-api's token cache) that a token may
-- have stopped being valid: any update or delete of auth_tokens (logout, refresh rotation,
-- reuse detection) or users (password or role change, removal), whoever makes it: sim-api,
-- admin-cli or plain SQL. One notification per statement; PostgreSQL folds identical ones
-- of a transaction into one, delivered at commit. The channel name is
-- db::notify::AUTH_EVENTS.
CREATE FUNCTION sim_notify_auth_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sim_auth_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER auth_tokens_changed
    AFTER UPDATE OR DELETE OR TRUNCATE ON auth_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION sim_notify_auth_change();

CREATE TRIGGER users_changed
    AFTER UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION sim_notify_auth_change();
