//! The tests' HTTPS receiver for outbound calls (back-channel logout, alert webhooks): a TLS
//! listener with a certificate from the test CA, which the server trusts through
//! `PORTCULLIS_OUTBOUND_CA_FILE`. Records every POST with its headers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{tls_acceptor, TestServer};

/// What the receiver got.
#[derive(Clone, Debug)]
pub struct Post {
    pub path: String,
    pub content_type: String,
    /// Every header, names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Post {
    /// The only form field of a back-channel logout request.
    pub fn logout_token(&self) -> String {
        let pairs: HashMap<String, String> = url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs.len(), 1, "only logout_token: {}", self.body);
        pairs["logout_token"].clone()
    }
}

/// The test's HTTPS receiver: records each request; answers each path with its scripted
/// statuses in turn (then 200).
#[derive(Default)]
pub struct Receiver {
    posts: Mutex<Vec<Post>>,
    script: Mutex<HashMap<String, VecDeque<u16>>>,
}

impl Receiver {
    pub async fn start(srv: &TestServer) -> (Arc<Self>, u16) {
        Self::start_on(srv, 0).await
    }

    /// On a given port (0: any), for a server configured with the receiver's URL before it
    /// could start.
    pub async fn start_on(srv: &TestServer, port: u16) -> (Arc<Self>, u16) {
        let me = Arc::new(Self::default());
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tls_acceptor(srv);
        let r = me.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let (r, acceptor) = (r.clone(), acceptor.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock)).await
                    {
                        r.serve(stream, port).await;
                    }
                });
            }
        });
        (me, port)
    }

    pub fn script(&self, path: &str, statuses: &[u16]) {
        self.script
            .lock()
            .unwrap()
            .insert(path.to_owned(), statuses.iter().copied().collect());
    }

    pub fn posts(&self, path: &str) -> Vec<Post> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.path == path)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `path` got `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Post> {
        for _ in 0..200 {
            let got = self.posts(path);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path}: {} requests, wanted {n}", self.posts(path).len());
    }

    async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        &self,
        mut sock: S,
        port: u16,
    ) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, body_start) = loop {
            let Ok(n) = sock.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break (String::from_utf8_lossy(&buf[..i]).into_owned(), i + 4);
            }
        };
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let mut headers = HashMap::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < body_start + len {
            let Ok(n) = sock.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[body_start..]).into_owned();
        let mut parts = request_line.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        assert_eq!(method, "POST", "{request_line}");
        self.posts.lock().unwrap().push(Post {
            path: path.to_owned(),
            content_type: headers.get("content-type").cloned().unwrap_or_default(),
            headers: headers.clone(),
            body,
        });
        let status = self
            .script
            .lock()
            .unwrap()
            .get_mut(path)
            .and_then(VecDeque::pop_front)
            .unwrap_or(200);
        let extra = if (300..400).contains(&status) {
            format!("Location: https://localhost:{port}/redirected-here\r\n")
        } else {
            String::new()
        };
        let res = format!(
            "HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n"
        );
        let _ = sock.write_all(res.as_bytes()).await;
        let _ = sock.shutdown().await;
    }
}
