DROP TRIGGER users_changed ON users;
DROP TRIGGER auth_tokens_changed ON auth_tokens;
DROP FUNCTION sim_notify_auth_change();
