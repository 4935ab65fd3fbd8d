//! The HTTP listener under abuse: half-sent requests, idle connections,
//! trickled bodies and more connections than the cap are answered or closed,
//! while a normal request is served and the SMTP listener keeps accepting;
//! and nothing operational is served on the public side.

use crate::support::{DEADLINE, SmtpClient, TestApp, scrape};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const HALF_SENT: &[u8] = b"GET /login HTTP/1.1\r\nHost: x\r\n";

/// Reads until the server closes the connection; what it sent. Fails the
/// test if it stays open past the deadline.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut buffer))
            .await
            .expect("the server closes the connection within the deadline");
        match read {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Whether the server has closed `stream` already (without waiting).
async fn closed_now(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buffer)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Lets this test process hold a few thousand sockets (both ends of each).
fn raise_descriptor_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

#[tokio::test]
async fn a_slowloris_of_a_thousand_half_sent_requests_is_closed_while_others_are_served() {
    raise_descriptor_limit();
    let app = TestApp::spawn_with(|s| {
        s.http.header_read_timeout = Duration::from_secs(2);
        s.http.keep_alive = Duration::from_secs(2);
        s.http.max_connections = 1100;
    })
    .await;
    let started = tokio::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..1000 {
        let mut stream = TcpStream::connect(app.http_addr)
            .await
            .expect("connect to HTTP");
        stream.write_all(HALF_SENT).await.expect("half a request");
        slow.push(stream);
    }

    // While they hang, a whole request is answered, and SMTP greets.
    let response = app
        .http()
        .get(app.url("/login"))
        .send()
        .await
        .expect("GET /login");
    assert_eq!(response.status(), 200);
    let (_, greeting) = SmtpClient::connect(app.smtp_addr)
        .await
        .expect("SMTP connect");
    greeting.assert_code(220);
    assert!(
        !closed_now(slow.last_mut().expect("the newest")).await,
        "the newest half-sent request is still waiting for its head"
    );

    for stream in &mut slow {
        let answer = read_until_closed(stream).await;
        assert!(
            !answer.starts_with(b"HTTP/1.1 200"),
            "a half-sent request gets no page"
        );
    }
    println!(
        "1000 half-sent requests, header timeout 2 s: all closed {:.1} s after the first connect",
        started.elapsed().as_secs_f64()
    );
    assert!(
        started.elapsed() < DEADLINE,
        "every half-sent request was closed soon after the header timeout"
    );
    let response = app.http().get(app.url("/login")).send().await.expect("GET");
    assert_eq!(response.status(), 200, "the listener is healthy afterwards");
}

#[tokio::test]
async fn connections_over_the_cap_are_answered_503_and_closed() {
    let app = TestApp::spawn_with(|s| {
        s.http.max_connections = 3;
        s.http.header_read_timeout = Duration::from_secs(2);
        s.http.keep_alive = Duration::from_secs(2);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(app.http_addr).await.expect("connect");
        stream.write_all(HALF_SENT).await.expect("half a request");
        held.push(stream);
    }
    // The three places are taken once the server has accepted them; a
    // request sent now is refused until they go.
    let mut refused = None;
    for _ in 0..100 {
        let mut extra = TcpStream::connect(app.http_addr).await.expect("connect");
        extra
            .write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("a request");
        let answer = String::from_utf8_lossy(&read_until_closed(&mut extra).await).into_owned();
        if answer.starts_with("HTTP/1.1 503") {
            refused = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("a connection over the cap is answered 503");
    assert!(refused.contains("Retry-After: 5"), "{refused}");
    assert!(refused.contains("Connection: close"), "{refused}");

    let (_, greeting) = SmtpClient::connect(app.smtp_addr)
        .await
        .expect("SMTP connect");
    greeting.assert_code(220);
    for stream in &mut held {
        read_until_closed(stream).await;
    }
    let response = app.http().get(app.url("/login")).send().await.expect("GET");
    assert_eq!(
        response.status(),
        200,
        "places come back when connections go"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let app = TestApp::spawn_with(|s| {
        s.http.keep_alive = Duration::from_secs(1);
        s.http.header_read_timeout = Duration::from_secs(5);
    })
    .await;
    let mut stream = TcpStream::connect(app.http_addr).await.expect("connect");
    let started = tokio::time::Instant::now();
    stream
        .write_all(b"GET /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("a request");
    let answer = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed for idling, before the header timeout would have"
    );
}

#[tokio::test]
async fn a_trickled_request_body_gets_408_and_the_connection_closes() {
    let app = TestApp::spawn_with(|s| s.http.request_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.http_addr).await.expect("connect");
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\nemail=a",
        )
        .await
        .expect("a request with a short body");
    let answer = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

#[tokio::test]
async fn metrics_and_health_are_on_the_admin_listener_only() {
    let app = TestApp::spawn().await;
    for path in ["/metrics", "/healthz", "/readyz"] {
        let public = app.http().get(app.url(path)).send().await.expect("GET");
        assert_eq!(public.status(), 404, "{path} is not on the public listener");
        let admin = reqwest::get(app.admin_url(path)).await.expect("GET");
        assert_eq!(admin.status(), 200, "{path} is on the admin listener");
    }
    let metrics = scrape(&app).await;
    assert!(metrics.has_family("registrar_store_commit_seconds"));
    assert!(metrics.has_family("registrar_limit_reached"));
    assert_eq!(
        metrics.value("registrar_listener_up", &[("listener", "admin")]),
        1.0
    );
}
