//! `List`: the caller's simulations a page at a time, with an opaque cursor.

use crate::auth::Caller;
use crate::error::db_status;
use crate::status::simulation_pb;
use base64::Engine as _;
use db::enums::JobState;
use db::simulation_views::{Cursor, ListOrder, PageQuery};
use proto::v1 as pb;
use std::collections::HashMap;
use tonic::Status;

/// Default page size of List.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size of List; larger requests are capped.
pub const MAX_PAGE_SIZE: u32 = 500;

/// A checked `ListRequest`.
#[derive(Debug, Clone)]
pub struct Query {
    state: Option<JobState>,
    order: ListOrder,
    ascending: bool,
    page_size: u32,
    after: Option<Cursor>,
    /// The request's raw order and state, which the page token repeats.
    wire: (i32, i32),
}

impl TryFrom<&pb::ListRequest> for Query {
    type Error = Status;

    fn try_from(req: &pb::ListRequest) -> Result<Self, Status> {
        let state = match pb::JobState::try_from(req.state) {
            Ok(w) => JobState::try_from(w).ok(),
            Err(_) => return Err(Status::invalid_argument("unknown state")),
        };
        let (order, ascending) = match pb::ListOrder::try_from(req.order) {
            Ok(pb::ListOrder::Unspecified | pb::ListOrder::StartTimeDesc) => {
                (ListOrder::StartTime, false)
            }
            Ok(pb::ListOrder::StartTimeAsc) => (ListOrder::StartTime, true),
            Ok(pb::ListOrder::EndTimeDesc) => (ListOrder::EndTime, false),
            Ok(pb::ListOrder::EndTimeAsc) => (ListOrder::EndTime, true),
            Err(_) => return Err(Status::invalid_argument("unknown order")),
        };
        let page_size = match req.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            Some(decode_token(&req.page_token, req.order, req.state)?)
        };
        Ok(Self {
            state,
            order,
            ascending,
            page_size,
            after,
            wire: (req.order, req.state),
        })
    }
}

/// One page of the listing `q` of what `caller` may see.
pub async fn page(c: &mut db::Conn, caller: &Caller, q: Query) -> Result<pb::ListResponse, Status> {
    let Query {
        state,
        order,
        ascending,
        page_size,
        after,
        wire,
    } = q;
    // One more row than asked tells whether another page follows.
    let (mut rows, total) = db::simulation_views::list_page(
        c,
        &PageQuery {
            owner: caller.owner_filter(),
            state,
            order,
            ascending,
            after,
            limit: i64::from(page_size) + 1,
        },
    )
    .await
    .map_err(db_status)?;
    let more = rows.len() > page_size as usize;
    rows.truncate(page_size as usize);
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => {
            let key = match order {
                ListOrder::StartTime => Some(last.simulation.start_time),
                ListOrder::EndTime => last.simulation.end_time,
            };
            let id = last.simulation.id;
            encode_token(wire.0, wire.1, Cursor { key, id })
        }
        _ => String::new(),
    };
    let ids: Vec<i64> = rows.iter().map(|v| v.simulation.id).collect();
    let simulated: HashMap<i64, i64> = db::simulations::task_totals(c, &ids)
        .await
        .map_err(db_status)?
        .into_iter()
        .map(|(id, t)| (id, t.simulated_primaries))
        .collect();
    Ok(pb::ListResponse {
        simulations: rows
            .iter()
            .map(|v| simulation_pb(v, simulated.get(&v.simulation.id).copied().unwrap_or(0)))
            .collect(),
        next_page_token,
        total_count: total,
    })
}

/// The List cursor: order, state filter, and the last row's key and id, base64url-encoded
/// so clients treat it as opaque.
fn encode_token(order: i32, state: i32, cursor: Cursor) -> String {
    let key = cursor
        .key
        .map_or_else(|| "inf".to_string(), |k| k.timestamp_micros().to_string());
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("v1|{order}|{state}|{key}|{}", cursor.id))
}

fn decode_token(token: &str, order: i32, state: i32) -> Result<Cursor, Status> {
    let bad = || Status::invalid_argument("invalid page_token");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let parts: Vec<&str> = text.split('|').collect();
    let [version, o, s, key, id] = parts.as_slice() else {
        return Err(bad());
    };
    if *version != "v1" || o.parse::<i32>().ok() != Some(order) {
        return Err(Status::invalid_argument(
            "page_token belongs to a listing with another order",
        ));
    }
    if s.parse::<i32>().ok() != Some(state) {
        return Err(Status::invalid_argument(
            "page_token belongs to a listing with another state filter",
        ));
    }
    let key = if *key == "inf" {
        None
    } else {
        let micros = key.parse::<i64>().map_err(|_| bad())?;
        Some(chrono::DateTime::from_timestamp_micros(micros).ok_or_else(bad)?)
    };
    let id = id.parse::<i64>().map_err(|_| bad())?;
    Ok(Cursor { key, id })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn page_token_round_trips_and_checks_the_listing() {
        let c = Cursor {
            key: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456),
            id: 42,
        };
        let t = encode_token(2, 1, c);
        assert_eq!(decode_token(&t, 2, 1).unwrap(), c);
        assert!(decode_token(&t, 1, 1).is_err());
        assert!(decode_token(&t, 2, 0).is_err());
        assert!(decode_token("garbage!", 2, 1).is_err());
        let inf = encode_token(3, 0, Cursor { key: None, id: 7 });
        assert_eq!(decode_token(&inf, 3, 0).unwrap().key, None);
    }
}
