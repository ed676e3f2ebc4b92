//! The alert webhook: every alert is POSTed as JSON to `PORTCULLIS_ALERT_WEBHOOK_URL`, signed
//! the Standard Webhooks way: headers `webhook-id`, `webhook-timestamp` and `webhook-signature`
//! (`v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed with the base64 secret after
//! `whsec_` in `PORTCULLIS_ALERT_WEBHOOK_SECRET`). Outbound rules as for back-channel logout
//! (PRACTICES §12): `https` only (`http` on loopback in development), no redirects, 5 s per
//! attempt, link-local and metadata addresses refused; at most [`CONCURRENCY`] requests in flight
//! (a delivery waiting to retry holds none); [`MAX_ATTEMPTS`] attempts with backoff (each signed afresh, same id), then
//! `alert.webhook_failed` is logged. The queue is in memory and bounded: the alert itself is
//! stored whatever happens here.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_core::audit::Event;
use tokio::sync::{mpsc, Semaphore};

use crate::backchannel::{chain, check_target, refused_name};
use crate::state::now;

pub const CONCURRENCY: usize = 4;
pub const MAX_ATTEMPTS: u32 = 5;
/// Alerts waiting for delivery before new ones are not sent (and counted in the log).
const QUEUE: usize = 1_000;

/// The webhook signing secret (`whsec_` + base64 of at least 24 random bytes). Never printed.
#[derive(Clone)]
pub struct WebhookSecret(Arc<hmac::Key>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`; the error never contains the value.
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let b64 = value
            .strip_prefix("whsec_")
            .ok_or("must start with whsec_ (Standard Webhooks format)")?;
        let bytes = STANDARD
            .decode(b64.trim())
            .map_err(|_| "must be whsec_ followed by base64")?;
        if bytes.len() < 24 {
            return Err("must carry at least 24 random bytes");
        }
        Ok(WebhookSecret(Arc::new(hmac::Key::new(
            hmac::HMAC_SHA256,
            &bytes,
        ))))
    }

    /// `v1,<base64 HMAC-SHA256(id.timestamp.body)>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let tag = hmac::sign(&self.0, format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }
}

/// Queues alerts for the webhook.
#[derive(Clone)]
pub struct Webhook {
    tx: mpsc::Sender<Event>,
}

impl Webhook {
    pub fn start(url: String, secret: WebhookSecret, http: reqwest::Client, dev: bool) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, url, secret, http, dev));
        Webhook { tx }
    }

    /// Never waits: a full queue drops this delivery (the alert is stored regardless).
    pub fn send(&self, alert: &Event) {
        if self.tx.try_send(alert.clone()).is_err() {
            tracing::warn!(event = "alert.webhook_dropped", "the webhook queue is full");
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<Event>,
    url: String,
    secret: WebhookSecret,
    http: reqwest::Client,
    dev: bool,
) {
    // A slot is held only while a request is in flight, not while waiting to retry: a
    // receiver that keeps failing cannot hold up the alerts behind it. Deliveries still
    // retrying count against the queue's bound.
    let sending = Arc::new(Semaphore::new(CONCURRENCY));
    let pending = Arc::new(Semaphore::new(QUEUE));
    while let Some(alert) = rx.recv().await {
        let Ok(place) = pending.clone().try_acquire_owned() else {
            tracing::warn!(
                event = "alert.webhook_dropped",
                "too many alerts await delivery"
            );
            continue;
        };
        let (url, secret, http, sending) =
            (url.clone(), secret.clone(), http.clone(), sending.clone());
        tokio::spawn(async move {
            deliver(&alert, &url, &secret, &http, dev, &sending).await;
            drop(place);
        });
    }
}

/// The body: the alert as its JSON event, wrapped the Standard Webhooks way.
pub fn body_of(alert: &Event) -> String {
    let ts = time::OffsetDateTime::from_unix_timestamp(alert.at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    serde_json::json!({"type": "alert.raised", "timestamp": ts, "data": alert}).to_string()
}

async fn deliver(
    alert: &Event,
    url: &str,
    secret: &WebhookSecret,
    http: &reqwest::Client,
    dev: bool,
    sending: &Semaphore,
) {
    let id = format!("msg_{}", portcullis_core::crypto::random_token(16));
    let body = body_of(alert);
    for attempt in 1..=MAX_ATTEMPTS {
        let Ok(slot) = sending.acquire().await else {
            return;
        };
        let outcome = async {
            let target = check_target(url, dev).map_err(|e| (true, e.to_string()))?;
            let ts = now();
            let res = http
                .post(target)
                .header("content-type", "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", secret.sign(&id, ts, &body))
                .body(body.clone())
                .send()
                .await
                // Without the URL: webhook URLs often carry their credential in the path.
                .map_err(|e| (refused_name(&e), chain(&e.without_url())))?;
            match res.status().as_u16() {
                200..=299 => Ok(()),
                s => Err((false, format!("the receiver answered {s}"))),
            }
        }
        .await;
        drop(slot);
        match outcome {
            Ok(()) => {
                tracing::info!(event = "alert.webhook_sent", webhook_id = %id, attempt);
                return;
            }
            Err((refused, why)) if refused || attempt == MAX_ATTEMPTS => {
                tracing::warn!(event = "alert.webhook_failed", webhook_id = %id, attempt, error = %why);
                return;
            }
            Err((_, why)) => {
                tracing::info!(event = "alert.webhook_retry", webhook_id = %id, attempt, error = %why);
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver that keeps failing some alerts must not hold up the others: the slots are
    /// free while a failed delivery waits to retry.
    #[tokio::test]
    async fn a_failing_delivery_does_not_hold_up_the_others() {
        use std::sync::Mutex;
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let record = record.clone();
                async move {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let reason = v["data"]["reason"].as_str().unwrap().to_owned();
                    record.lock().unwrap().push(reason.clone());
                    if reason == "good" {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let hook = Webhook::start(
            format!("http://127.0.0.1:{port}/hook"),
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            reqwest::Client::new(),
            true,
        );
        let alert = |reason: &str| {
            Event::new(portcullis_core::audit::EventKind::AlertRaised, 1).reason(reason)
        };
        // As many failing alerts as there are slots, then one the receiver takes.
        for _ in 0..CONCURRENCY {
            hook.send(&alert("bad"));
        }
        hook.send(&alert("good"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = seen.lock().unwrap().clone();
            if let Some(at) = got.iter().position(|r| r == "good") {
                // Delivered while the failing ones still had retries to go.
                let bad_before = got[..at].iter().filter(|r| *r == "bad").count();
                assert!(bad_before < CONCURRENCY * MAX_ATTEMPTS as usize, "{got:?}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{got:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn signs_like_standard_webhooks() {
        // The example of the Standard Webhooks specification's test vectors: secret, id,
        // timestamp and payload, and the signature they give.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        for bad in [
            "",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!",
            "whsec_c2hvcnQ=",
        ] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{secret:?}"), "WebhookSecret(…)");
    }
}
