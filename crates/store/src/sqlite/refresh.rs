//! Refresh tokens: stored by hash, rotated on use, revoked by family. Reuse of a token rotated
//! longer ago than the grace window is taken as theft and ends the family and its session.

use async_trait::async_trait;
use portcullis_core::ids::{ClientId, FamilyId, SessionId, UserId};
use portcullis_core::model::RefreshToken;
use portcullis_core::store::{
    RefreshRotation, RefreshRules, RefreshTokenStore, StoreError, StoreResult,
};
use sqlx::SqliteConnection;

use super::sessions::revoke_session_in;
use super::{from_json, map_err, map_err_conflict, to_json, SqliteStore};

#[derive(sqlx::FromRow, Clone)]
struct RefreshRow {
    token_hash: String,
    family_id: String,
    client_id: String,
    user_id: String,
    session_id: String,
    scope: String,
    audience: Option<String>,
    auth_time: i64,
    created_at: i64,
    expires_at: i64,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
    offline: bool,
}

impl TryFrom<RefreshRow> for RefreshToken {
    type Error = StoreError;

    fn try_from(row: RefreshRow) -> StoreResult<Self> {
        Ok(RefreshToken {
            token_hash: row.token_hash,
            family_id: FamilyId::from_trusted(row.family_id),
            client_id: ClientId::from_trusted(row.client_id),
            user_id: UserId::from_trusted(row.user_id),
            session_id: SessionId::from_trusted(row.session_id),
            scope: from_json("scope", &row.scope)?,
            audience: row.audience,
            auth_time: row.auth_time,
            created_at: row.created_at,
            expires_at: row.expires_at,
            rotated_at: row.rotated_at,
            revoked_at: row.revoked_at,
            offline: row.offline,
        })
    }
}

/// The condition (on a `refresh_tokens` row, unqualified) that its client and user are
/// enabled and, unless it is offline, its session is active at `?1` and not idle for longer
/// than the client's own idle timeout `?5` (NULL: none).
macro_rules! holders_live {
    () => {
        "EXISTS (SELECT 1 FROM users u JOIN clients c ON c.id = refresh_tokens.client_id \
         WHERE u.id = refresh_tokens.user_id AND u.disabled = 0 AND c.disabled = 0 \
         AND (refresh_tokens.offline = 1 OR EXISTS (SELECT 1 FROM sessions s \
              WHERE s.id = refresh_tokens.session_id AND s.user_id = u.id \
              AND s.revoked_at IS NULL AND s.expires_at > ?1 \
              AND (s.idle_timeout IS NULL OR s.last_seen_at + s.idle_timeout > ?1) \
              AND (?5 IS NULL OR s.last_seen_at + ?5 > ?1))))"
    };
}

/// Every refresh-token column, as one string literal for `concat!`.
macro_rules! refresh_columns {
    () => {
        "token_hash, family_id, client_id, user_id, session_id, scope, audience, auth_time, \
         created_at, expires_at, rotated_at, revoked_at, offline"
    };
}

/// Inside the caller's transaction: revokes every not yet revoked token of the family.
pub(super) async fn revoke_family_in(
    conn: &mut SqliteConnection,
    family_id: &FamilyId,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family_id.as_str())
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// (Numbered parameters throughout: sqlx counts plain `?` separately from `?NNN`, so the two
/// must not be mixed in one statement.)
/// Stores a token in one statement, and only while its holders are live: the user enabled, the
/// client enabled, and the session active (session-bound) or signed in with the user's current
/// password version (offline: it outlives its session, so the sign-in itself must have used
/// the current password). And the grant must not predate its session's latest authentication:
/// a code issued before a password change moved the session on is refused, whatever it was
/// for. A disable or password change racing the issue of a first token
/// therefore cannot be missed by its sweep. False when refused.
///
/// If an authorization code that started this family has been replayed, the token is stored
/// already revoked (as of the replay): this closes the race where a replay lands between the
/// first redemption and the issuing of its tokens.
/// `first`: the first token of a family (from a code), which needs a live session even when
/// offline (a session ended meanwhile, by a detection's response for one, must not hand out a
/// grant that outlives it); a successor of an offline token does not.
async fn insert_refresh_in(
    conn: &mut SqliteConnection,
    token: &RefreshToken,
    now: i64,
    first: bool,
) -> StoreResult<bool> {
    let inserted = sqlx::query(concat!(
        "INSERT INTO refresh_tokens (",
        refresh_columns!(),
        ") SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, COALESCE(?12, \
         (SELECT MIN(replayed_at) FROM auth_codes WHERE family_id = ?13)), ?14 \
         WHERE EXISTS (SELECT 1 FROM users u JOIN clients c ON c.id = ?3 \
           WHERE u.id = ?4 AND u.disabled = 0 AND c.disabled = 0 \
           AND EXISTS (SELECT 1 FROM sessions v WHERE v.id = ?5 AND v.auth_time <= ?8 \
                AND (?14 = 0 OR v.password_version = u.password_version)) \
           AND ((?14 AND NOT ?16) OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = ?5 AND s.user_id = u.id \
                AND s.revoked_at IS NULL AND s.expires_at > ?15 \
                AND (s.idle_timeout IS NULL OR s.last_seen_at + s.idle_timeout > ?15))))"
    ))
    .bind(&token.token_hash)
    .bind(token.family_id.as_str())
    .bind(token.client_id.as_str())
    .bind(token.user_id.as_str())
    .bind(token.session_id.as_str())
    .bind(to_json(&token.scope)?)
    .bind(token.audience.as_deref())
    .bind(token.auth_time)
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(token.rotated_at)
    .bind(token.revoked_at)
    .bind(token.family_id.as_str())
    .bind(token.offline)
    .bind(now)
    .bind(first)
    .execute(conn)
    .await
    .map_err(|e| map_err_conflict(e, |_| "refresh token"))?;
    Ok(inserted.rows_affected() > 0)
}

/// Stores `next` as the successor of `parent_hash` in one statement, only while the parent is
/// live for its client at `now` (not rotated, revoked or expired, within the offline idle
/// limit, its user and client enabled and, unless offline, its session active and not idle
/// for the server's or the client's idle timeout). The trigger
/// `refresh_successor_rotates_parent` marks the parent rotated in the same statement. False
/// when the parent was not live (nothing changed).
async fn insert_successor(
    conn: &mut SqliteConnection,
    next: &RefreshToken,
    parent_hash: &str,
    now: i64,
    rules: &RefreshRules,
) -> StoreResult<bool> {
    let inserted = sqlx::query(concat!(
        "INSERT INTO refresh_tokens (",
        refresh_columns!(),
        ", parent_hash) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, COALESCE(?12, \
         (SELECT MIN(replayed_at) FROM auth_codes WHERE family_id = ?13)), ?14, ?15 \
         WHERE EXISTS (SELECT 1 FROM refresh_tokens o \
           WHERE o.token_hash = ?15 AND o.client_id = ?3 AND o.rotated_at IS NULL \
           AND o.revoked_at IS NULL AND o.expires_at > ?16 \
           AND (o.offline = 0 OR o.created_at + ?17 > ?16) \
           AND EXISTS (SELECT 1 FROM users u JOIN clients c ON c.id = o.client_id \
             WHERE u.id = o.user_id AND u.disabled = 0 AND c.disabled = 0 \
             AND (o.offline = 1 OR EXISTS (SELECT 1 FROM sessions s \
               WHERE s.id = o.session_id AND s.user_id = u.id \
               AND s.revoked_at IS NULL AND s.expires_at > ?16 \
               AND (s.idle_timeout IS NULL OR s.last_seen_at + s.idle_timeout > ?16) \
               AND (?18 IS NULL OR s.last_seen_at + ?18 > ?16)))))"
    ))
    .bind(&next.token_hash)
    .bind(next.family_id.as_str())
    .bind(next.client_id.as_str())
    .bind(next.user_id.as_str())
    .bind(next.session_id.as_str())
    .bind(to_json(&next.scope)?)
    .bind(next.audience.as_deref())
    .bind(next.auth_time)
    .bind(next.created_at)
    .bind(next.expires_at)
    .bind(next.rotated_at)
    .bind(next.revoked_at)
    .bind(next.family_id.as_str())
    .bind(next.offline)
    .bind(parent_hash)
    .bind(now)
    .bind(rules.offline_idle)
    .bind(rules.client_session_idle)
    .execute(conn)
    .await
    .map_err(|e| map_err_conflict(e, |_| "refresh token"))?;
    Ok(inserted.rows_affected() > 0)
}

/// One rotation waiting for the group commit.
pub(super) struct RotationJob {
    next: RefreshToken,
    parent_hash: String,
    now: i64,
    rules: RefreshRules,
    reply: tokio::sync::oneshot::Sender<StoreResult<bool>>,
}

/// Most rotations one commit carries.
const BATCH: usize = 64;

impl SqliteStore {
    /// Runs [`insert_successor`] through the group commit: a task takes every rotation
    /// waiting at that moment (up to [`BATCH`]) into one write transaction, so concurrent
    /// rotations share one commit (one WAL sync under `synchronous = FULL`) instead of paying
    /// one each. Each statement stays atomic on its own; the answer comes after the commit.
    async fn rotate_in_batch(
        &self,
        next: RefreshToken,
        parent_hash: &str,
        now: i64,
        rules: &RefreshRules,
    ) -> StoreResult<bool> {
        let sender = self.rotations.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            tokio::spawn(run_batches(self.clone(), rx));
            tx
        });
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = RotationJob {
            next,
            parent_hash: parent_hash.to_owned(),
            now,
            rules: *rules,
            reply,
        };
        if sender.send(job).await.is_err() {
            return Err(StoreError::Backend("the rotation queue has stopped".into()));
        }
        answer
            .await
            .map_err(|_| StoreError::Backend("the rotation queue dropped a rotation".into()))?
    }
}

async fn run_batches(store: SqliteStore, mut rx: tokio::sync::mpsc::Receiver<RotationJob>) {
    // Runs as long as the process (the store it holds keeps the sender alive).
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let results = commit_batch(&store, &jobs).await;
        for (job, result) in jobs.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

/// One transaction for the batch; a failed commit fails every rotation in it (none of them
/// happened).
async fn commit_batch(store: &SqliteStore, jobs: &[RotationJob]) -> Vec<StoreResult<bool>> {
    let fail_all = |e: StoreError| {
        jobs.iter()
            .map(|_| Err(clone_error(&e)))
            .collect::<Vec<_>>()
    };
    let mut tx = match store.begin_write().await {
        Ok(tx) => tx,
        Err(e) => return fail_all(e),
    };
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        results.push(
            insert_successor(&mut tx, &job.next, &job.parent_hash, job.now, &job.rules).await,
        );
    }
    match tx.commit().await.map_err(map_err) {
        Ok(()) => results,
        Err(e) => fail_all(e),
    }
}

fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Busy => StoreError::Busy,
        StoreError::Conflict(s) => StoreError::Conflict(s.clone()),
        StoreError::Corrupt(s) => StoreError::Corrupt(s.clone()),
        other => StoreError::Backend(other.to_string()),
    }
}

/// Refuses a successor that `make_next` did not bind to the same family, client, user and
/// session, or that outlives the family: such a token would escape family revocation.
fn check_successor(old: &RefreshToken, next: &RefreshToken) -> StoreResult<()> {
    if next.family_id != old.family_id
        || next.client_id != old.client_id
        || next.user_id != old.user_id
        || next.session_id != old.session_id
        || next.expires_at > old.expires_at
        || next.offline != old.offline
        || next.token_hash == old.token_hash
        || next.rotated_at.is_some()
        || next.revoked_at.is_some()
    {
        return Err(StoreError::Backend(
            "the rotated refresh token is not a live successor bound to the same family".to_owned(),
        ));
    }
    Ok(())
}

/// Decides what presenting `token`, which could not be rotated, means; revokes the family and
/// the session (in the caller's transaction) on reuse after the grace window.
async fn settle_unrotatable(
    conn: &mut SqliteConnection,
    token: RefreshToken,
    client_id: &ClientId,
    now: i64,
    grace_seconds: i64,
) -> StoreResult<RefreshRotation> {
    let rotated_at = match token.rotated_at {
        Some(at)
            if token.revoked_at.is_none()
                && token.expires_at > now
                && token.client_id == *client_id =>
        {
            at
        }
        // Unknown client, revoked or expired; or never rotated yet not rotatable (which the
        // UPDATE's conditions make impossible): refused.
        _ => return Ok(RefreshRotation::Invalid),
    };
    if now.saturating_sub(rotated_at) <= grace_seconds {
        return Ok(RefreshRotation::RecentlyRotated);
    }
    // Reuse of a token replaced before the grace window: someone else holds the family.
    revoke_family_in(conn, &token.family_id, now).await?;
    revoke_session_in(conn, &token.session_id, now).await?;
    Ok(RefreshRotation::ReuseDetected {
        family_id: token.family_id,
        session_id: token.session_id,
        user_id: token.user_id,
    })
}

#[async_trait]
impl RefreshTokenStore for SqliteStore {
    async fn insert_refresh_token(&self, token: &RefreshToken, now: i64) -> StoreResult<bool> {
        let mut conn = self.write_conn().await?;
        insert_refresh_in(&mut conn, token, now, true).await
    }

    /// Also refuses (and revokes the family of) a token whose user or client is disabled.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        client_id: &ClientId,
        now: i64,
        rules: &RefreshRules,
        make_next: &(dyn for<'a> Fn(&'a RefreshToken) -> Option<RefreshToken> + Send + Sync),
    ) -> StoreResult<RefreshRotation> {
        // A plain read first: a made-up token (its checksum is no secret) or another client's
        // must not cost a turn in the write lane. Either way nothing would change.
        let seen: Option<RefreshRow> = sqlx::query_as(concat!(
            "SELECT ",
            refresh_columns!(),
            " FROM refresh_tokens WHERE token_hash = ? AND client_id = ?"
        ))
        .bind(old_hash)
        .bind(client_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(seen) = seen else {
            return Ok(RefreshRotation::Invalid);
        };
        let seen = RefreshToken::try_from(seen)?;
        // The common case, a live token, in one statement: the successor is inserted only if
        // the parent is still live at that moment (every check of the slow path below, in the
        // same statement), and the insert marks the parent rotated (a trigger). Anything else
        // (reuse, a holder gone, a race lost) falls through to the transaction below, which
        // decides what it means.
        if seen.rotated_at.is_none() && seen.revoked_at.is_none() && seen.expires_at > now {
            let Some(next) = make_next(&seen) else {
                return Ok(RefreshRotation::Refused);
            };
            check_successor(&seen, &next)?;
            if self.rotate_in_batch(next, old_hash, now, rules).await? {
                return Ok(RefreshRotation::Rotated(RefreshToken {
                    rotated_at: Some(now),
                    ..seen
                }));
            }
        }
        // BEGIN IMMEDIATE, then a write first: concurrent rotations of one token queue on the
        // write lock, and exactly one of them finds `rotated_at IS NULL`.
        let mut tx = self.begin_write().await?;
        let rotated: Vec<RefreshRow> = sqlx::query_as(concat!(
            "UPDATE refresh_tokens SET rotated_at = ?1 \
             WHERE token_hash = ?2 AND client_id = ?3 AND rotated_at IS NULL \
             AND revoked_at IS NULL AND expires_at > ?1 \
             AND (offline = 0 OR created_at + ?4 > ?1) AND ",
            holders_live!(),
            " RETURNING ",
            refresh_columns!()
        ))
        .bind(now)
        .bind(old_hash)
        .bind(client_id.as_str())
        .bind(rules.offline_idle)
        .bind(rules.client_session_idle)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;

        if let Some(row) = rotated.into_iter().next() {
            let old = RefreshToken::try_from(row)?;
            // The caller may refuse the rotation (e.g. a wider scope was asked for): then nothing
            // changes and the presented token stays live.
            let Some(next) = make_next(&old) else {
                tx.rollback().await.map_err(map_err)?;
                return Ok(RefreshRotation::Refused);
            };
            check_successor(&old, &next)?;
            if !insert_refresh_in(&mut tx, &next, now, false).await? {
                tx.rollback().await.map_err(map_err)?;
                return Ok(RefreshRotation::Invalid);
            }
            tx.commit().await.map_err(map_err)?;
            return Ok(RefreshRotation::Rotated(old));
        }

        let row: Option<RefreshRow> = sqlx::query_as(concat!(
            "SELECT ",
            refresh_columns!(),
            " FROM refresh_tokens WHERE token_hash = ?"
        ))
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        // A live token of this client that the UPDATE skipped: its user, client or session
        // has ended, so the family ends too.
        if let Some(row) = &row {
            let token = RefreshToken::try_from(row.clone())?;
            if token.client_id == *client_id
                && token.rotated_at.is_none()
                && token.revoked_at.is_none()
                && token.expires_at > now
                && (!token.offline || token.created_at + rules.offline_idle > now)
                && !holders_active(&mut tx, &token, now).await?
            {
                revoke_family_in(&mut tx, &token.family_id, now).await?;
                tx.commit().await.map_err(map_err)?;
                return Ok(RefreshRotation::Invalid);
            }
        }
        let outcome = match row {
            Some(row) => {
                settle_unrotatable(
                    &mut tx,
                    RefreshToken::try_from(row)?,
                    client_id,
                    now,
                    rules.reuse_grace,
                )
                .await?
            }
            None => RefreshRotation::Invalid,
        };
        // Commit (not drop) so the write lock is released before the connection is reused.
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    }

    async fn revoke_family(&self, family_id: &FamilyId, now: i64) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        revoke_family_in(&mut conn, family_id, now).await
    }

    /// One statement: the token of `client_id` with every liveness rule, holders included,
    /// so another client's token costs the same as an unknown one.
    async fn live_refresh_token(
        &self,
        token_hash: &str,
        client_id: &ClientId,
        now: i64,
        rules: &RefreshRules,
    ) -> StoreResult<Option<RefreshToken>> {
        let row: Option<RefreshRow> = sqlx::query_as(concat!(
            "SELECT ",
            refresh_columns!(),
            " FROM refresh_tokens WHERE token_hash = ?2 AND client_id = ?3 \
             AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > ?1 \
             AND (offline = 0 OR created_at + ?4 > ?1) AND ",
            holders_live!()
        ))
        .bind(now)
        .bind(token_hash)
        .bind(client_id.as_str())
        .bind(rules.offline_idle)
        .bind(rules.client_session_idle)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(RefreshToken::try_from).transpose()
    }

    async fn refresh_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        let row: Option<RefreshRow> = sqlx::query_as(concat!(
            "SELECT ",
            refresh_columns!(),
            " FROM refresh_tokens WHERE token_hash = ?"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(RefreshToken::try_from).transpose()
    }
}

/// Whether the token's client and user are enabled and, for a session-bound token, its session
/// is still active (an offline token outlives its session).
async fn holders_active(
    conn: &mut SqliteConnection,
    token: &RefreshToken,
    now: i64,
) -> StoreResult<bool> {
    let live: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM users u JOIN clients c ON c.id = ?1 \
         WHERE u.id = ?2 AND u.disabled = 0 AND c.disabled = 0 \
         AND (?3 OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = ?4 AND s.user_id = u.id \
              AND s.revoked_at IS NULL AND s.expires_at > ?5 \
              AND (s.idle_timeout IS NULL OR s.last_seen_at + s.idle_timeout > ?5)))",
    )
    .bind(token.client_id.as_str())
    .bind(token.user_id.as_str())
    .bind(token.offline)
    .bind(token.session_id.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    Ok(live.is_some())
}
