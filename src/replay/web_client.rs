//! Activates a pending customer the way the customer does: open the link from
//! the activation mail, read the form, and post name and password with the
//! CSRF cookie, over HTTP to our own listener.
//!
//! Replay uses it to set up the "sender is already active" precondition
//! through the real web side rather than by writing rows.

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// The name and password a replayed customer chooses.
const NAME: &str = "Replay Customer";
const PASSWORD: &str = "quiet lantern orbit meadow 7";

/// Opens `link` against the HTTP listener at `server` and activates the
/// account it belongs to.
///
/// # Errors
/// The page does not offer the form, or the activation is not answered with
/// a redirect to the portal.
pub async fn activate(server: SocketAddr, link: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(link).with_context(|| format!("not a link: {link}"))?;
    let token = url
        .query_pairs()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .context("the activation link has no token")?;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };

    let form = request(server, Method::GET, &path, None, Vec::new()).await?;
    anyhow::ensure!(
        form.status == StatusCode::OK,
        "the activation page answered {}",
        form.status
    );
    let csrf = hidden_field(&form.body, "csrf").context("the activation page has no form")?;
    let cookie = form.cookies.join("; ");

    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .append_pair("token", &token)
        .append_pair("name", NAME)
        .append_pair("password", PASSWORD)
        .append_pair("confirm", PASSWORD)
        .finish();
    let saved = request(
        server,
        Method::POST,
        "/activate",
        Some(&cookie),
        body.into_bytes(),
    )
    .await?;
    anyhow::ensure!(
        saved.status == StatusCode::SEE_OTHER,
        "activation answered {} instead of a redirect",
        saved.status
    );
    Ok(())
}

struct Page {
    status: StatusCode,
    /// `name=value` of every cookie set.
    cookies: Vec<String>,
    body: String,
}

async fn request(
    server: SocketAddr,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<Page> {
    let stream = TcpStream::connect(server)
        .await
        .with_context(|| format!("cannot connect to the HTTP listener at {server}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake failed")?;
    tokio::spawn(async move {
        // The connection ends with the request; its error, if any, shows
        // up in the response below.
        let _ = connection.await;
    });
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, server.to_string());
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    if !body.is_empty() {
        builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .context("cannot build the HTTP request")?;
    let response = sender
        .send_request(request)
        .await
        .context("the HTTP request failed")?;
    let status = response.status();
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .map(|pair| pair.trim().to_owned())
        .collect();
    let bytes = response
        .into_body()
        .collect()
        .await
        .context("cannot read the HTTP response")?
        .to_bytes();
    Ok(Page {
        status,
        cookies,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// The value of `<input type="hidden" name="{name}" value="...">`.
fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    html[start..].split('"').next().map(str::to_owned)
}
