//! Raw SQL that is prepared once per connection and then reused.
//!
//! Diesel treats `sql_query` text as unsafe to cache, so diesel-async parses and plans it again
//! on every call (an extra round trip for `Parse`/`Describe`, plus planning: ~1 ms for the claim
//! statement). The hot queue statements are fixed strings with bound parameters, so they are
//! safe to prepare: [`prepared`] marks a query as such, and the connection's statement cache
//! then keys it by its SQL text and bind types. Only use it for SQL that is a constant string
//! (never SQL built from data), or the cache grows without bound.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// A query whose SQL is a fixed string, kept in the connection's prepared-statement cache.
#[derive(Debug, Clone)]
pub(crate) struct Prepared<Q>(Q);

/// Marks `query` (an `sql_query` with its binds) as safe to prepare once per connection.
pub(crate) fn prepared<Q>(query: Q) -> Prepared<Q> {
    Prepared(query)
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Prepared<Q> {
    // No static id: the statement cache keys the statement by its SQL text and bind types.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}
