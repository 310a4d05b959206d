//! `/api/v1/changes` (the feed, paged) and `/api/v1/events` (the same changes, live, as
//! Server-Sent Events).

use super::{QueryOnce, Reply};
use crate::changes::{self, Wake};
use crate::error::Error;
use crate::http::error::ApiError;
use crate::http::guards::AuthUser;
use crate::state::AppState;
use crate::users;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::stream::{Event, EventStream};
use rocket::{Shutdown, State, get, routes};
use tokio::sync::broadcast::error::RecvError;

fn parse_limit(limit: Option<&str>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=changes::MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request("`limit` must be a whole number from 1 to 1000")),
        },
    }
}

#[get("/changes?<since>&<limit>")]
async fn feed(
    state: &State<AppState>,
    auth: AuthUser,
    _once: QueryOnce,
    since: Option<&str>,
    limit: Option<&str>,
) -> Result<Reply, ApiError> {
    let limit = parse_limit(limit)?;
    let user_id = auth.user.id.clone();
    let since = since.filter(|s| !s.is_empty()).map(|s| changes::decode_cursor(&user_id, s)).transpose()?;
    let page = state
        .db
        .run(move |conn| match since {
            // Without a cursor: where the feed is now, and nothing before it.
            None => Ok(changes::Page {
                changes: Vec::new(),
                cursor: changes::cursor(&user_id, changes::latest(conn, &user_id)?),
                has_more: false,
            }),
            Some(since) => changes::page(conn, &user_id, since, limit),
        })
        .await?;
    Reply::json(Status::Ok, &page)
}

/// The `Last-Event-ID` header of a reconnecting event stream.
pub struct LastEventId(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LastEventId {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(LastEventId(req.headers().get_one("Last-Event-ID").map(str::to_string)))
    }
}

/// Changes as they happen. Each event is `change` with the change as JSON and the feed cursor
/// after it as its id; a reconnect with `Last-Event-ID` resumes after that change. A stream
/// whose position fell out of the kept history gets one `gone` event and ends.
///
/// A stream lives no longer than its credential: before it sends anything after a wake, and at
/// every heartbeat, it checks that the token it was opened with is still live. A revocation in
/// this process wakes it at once; one by the command line (another process) or an expiry is seen
/// within a heartbeat.
#[get("/events")]
async fn events(
    state: &State<AppState>,
    auth: AuthUser,
    last_event_id: LastEventId,
    mut shutdown: Shutdown,
) -> Result<EventStream<impl futures_util::Stream<Item = Event>>, ApiError> {
    let user_id = auth.user.id.clone();
    let resume = last_event_id.0.filter(|s| !s.is_empty()).map(|s| changes::decode_cursor(&user_id, &s)).transpose()?;
    let lookup = user_id.clone();
    let mut at = match resume {
        Some(seq) => seq,
        None => state.db.run(move |conn| changes::latest(conn, &lookup)).await?,
    };
    let (db, mut wakes) = (state.db.clone(), state.changes.subscribe());
    let heartbeat = state.config.server.events_heartbeat;
    let (clock, token_hash) = (state.clock.clone(), auth.token_hash.clone());
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = EventStream! {
        'stream: loop {
            if !still_live(&db, &clock, &token_hash).await {
                break 'stream;
            }
            // Everything after `at`, page by page.
            loop {
                let (user, since) = (user_id.clone(), at);
                match db.run(move |conn| changes::page(conn, &user, since, 100)).await {
                    Ok(page) => {
                        for change in &page.changes {
                            at = change.seq;
                            let data = serde_json::to_string(change).unwrap_or_default();
                            yield Event::data(data).event("change").id(changes::cursor(&user_id, change.seq));
                        }
                        if !page.has_more {
                            break;
                        }
                    }
                    Err(e @ Error::Gone(_)) => {
                        yield Event::data(e.to_string()).event("gone");
                        break 'stream;
                    }
                    Err(e) => {
                        log::warn!("event stream: {}", e);
                        break 'stream;
                    }
                }
            }
            // Then wait for this user's next change (or anyone's, when several changed); a
            // revocation of theirs and each heartbeat only look at the credential.
            loop {
                tokio::select! {
                    wake = wakes.recv() => match wake {
                        Ok(Wake::User(who) | Wake::Credentials(who)) if who != user_id => continue,
                        Ok(Wake::Credentials(_)) => {}
                        Ok(_) | Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => break 'stream,
                    },
                    _ = recheck.tick() => {}
                    _ = &mut shutdown => break 'stream,
                }
                if !still_live(&db, &clock, &token_hash).await {
                    break 'stream;
                }
            }
        }
    };
    Ok(stream.heartbeat(heartbeat))
}

/// Whether the credential a stream was opened with is still live (not revoked, not expired); a
/// database that cannot say ends the stream too.
async fn still_live(db: &crate::db::Db, clock: &crate::clock::Clock, token_hash: &[u8]) -> bool {
    let (hash, now) = (token_hash.to_vec(), clock.now_ms());
    match db.run(move |conn| users::credential_live(conn, &hash, now)).await {
        Ok(live) => live,
        Err(e) => {
            log::warn!("event stream: {}", e);
            false
        }
    }
}

pub fn routes() -> Vec<rocket::Route> {
    routes![feed, events]
}
