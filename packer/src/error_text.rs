//! How an error reads: the whole chain of context, each piece once. Driver errors are worded
//! by the server or the library itself: PostgreSQL's own message (severity, message, detail,
//! hint) instead of "db error" followed by the same message again, SQLite's result code
//! ("database or disk is full") instead of a stale "not an error". `{:#}` would print every
//! layer of a wrapped driver error, so the server's text came out two or three times.

use std::error::Error as StdError;

/// The text of one error in a chain, and whether the chain below it is already said.
fn piece(e: &(dyn StdError + 'static)) -> (String, bool) {
    if let Some(pg) = e.downcast_ref::<postgres::Error>() {
        return (restorer::error::pg_detail(pg), true);
    }
    if let Some(sq) = e.downcast_ref::<rusqlite::Error>() {
        return (restorer::sqlite::describe(sq), true);
    }
    if let Some(r) = e.downcast_ref::<restorer::Error>() {
        let done = matches!(r, restorer::Error::Postgres { .. } | restorer::Error::Sqlite { .. });
        return (r.to_string(), done);
    }
    (e.to_string(), false)
}

/// The chain, outermost first, joined with ": ", skipping any piece the text already holds.
pub fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let (text, done) = piece(cause);
        if !text.is_empty() && !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        if done {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn context_and_sqlite_code_each_once() {
        let sq = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(13), Some("not an error".into()));
        let e = Err::<(), _>(sq).context("copying app.db").unwrap_err();
        assert_eq!(chain(&e), "copying app.db: database or disk is full");
        let e = anyhow::anyhow!("inner").context("outer: inner");
        assert_eq!(chain(&e), "outer: inner");
    }
}
