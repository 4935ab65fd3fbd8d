//! Every protocol answer the session gives on its own (limits, timeouts,
//! shutdown, the greeting and EHLO), and the one place engine replies are
//! turned into our `SmtpReply` with an enhanced status code.
//!
//! Answers about a message's fate at end of DATA live in `reply`.

use super::reply::SmtpReply;
use mailin_embedded::Response;

fn answer(code: u16, text: &str) -> SmtpReply {
    SmtpReply {
        code,
        text: text.to_owned(),
    }
}

pub fn greeting(hostname: &str) -> SmtpReply {
    answer(220, &format!("{hostname} ESMTP"))
}

/// Our EHLO reply: mailin's own advertises neither SIZE nor PIPELINING.
pub fn ehlo(hostname: &str, max_message_bytes: usize, starttls: bool) -> Vec<u8> {
    let mut lines = vec![
        hostname.to_owned(),
        "PIPELINING".into(),
        format!("SIZE {max_message_bytes}"),
        "8BITMIME".into(),
        "ENHANCEDSTATUSCODES".into(),
    ];
    if starttls {
        lines.push("STARTTLS".into());
    }
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .flat_map(|(at, line)| {
            let separator = if at == last { ' ' } else { '-' };
            format!("250{separator}{line}\r\n").into_bytes()
        })
        .collect()
}

/// Writes a one-line reply.
pub fn render(reply: &SmtpReply) -> Vec<u8> {
    format!("{} {}\r\n", reply.code, reply.text).into_bytes()
}

/// An engine reply as we send it: its text, with an enhanced status code
/// put in front when the engine gave none (we advertise
/// ENHANCEDSTATUSCODES, so every 2xx/4xx/5xx reply carries one).
pub fn from_engine(response: &Response) -> SmtpReply {
    let written = response.buffer().unwrap_or_default();
    let written = String::from_utf8_lossy(&written);
    let text = written
        .lines()
        .last()
        .and_then(|line| line.get(4..))
        .unwrap_or_default()
        .trim_end();
    if has_enhanced_code(text) || response.code == 354 {
        return answer(response.code, text);
    }
    let enhanced = match response.code {
        200..=299 => "2.0.0",
        421 => "4.3.0",
        500 => "5.5.2",
        501 | 502 | 504 => "5.5.4",
        503 => "5.5.1",
        400..=499 => "4.0.0",
        _ => "5.0.0",
    };
    answer(response.code, &format!("{enhanced} {text}"))
}

fn has_enhanced_code(text: &str) -> bool {
    let code = text.split(' ').next().unwrap_or_default();
    let parts: Vec<&str> = code.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

// Connection admission (sent instead of the greeting, then the connection
// closes).

pub fn too_many_sessions() -> SmtpReply {
    answer(421, "4.7.0 too many sessions; try again later")
}

pub fn too_many_sessions_from_address() -> SmtpReply {
    answer(
        421,
        "4.7.0 too many sessions from your address; try again later",
    )
}

pub fn too_many_connections_from_address() -> SmtpReply {
    answer(
        421,
        "4.7.0 too many connections from your address; try again later",
    )
}

// Session limits (each closes the session).

pub fn too_many_messages() -> SmtpReply {
    answer(
        421,
        "4.7.0 too many messages in this session; reconnect to send more",
    )
}

pub fn too_many_errors() -> SmtpReply {
    answer(421, "4.7.0 too many errors")
}

pub fn idle_timeout() -> SmtpReply {
    answer(421, "4.4.2 idle too long; closing connection")
}

pub fn command_timeout() -> SmtpReply {
    answer(421, "4.4.2 command line took too long; closing connection")
}

pub fn session_timeout() -> SmtpReply {
    answer(421, "4.4.2 session time limit reached; closing connection")
}

pub fn data_too_slow() -> SmtpReply {
    answer(
        421,
        "4.4.2 message data arriving too slowly; closing connection",
    )
}

pub fn shutting_down() -> SmtpReply {
    answer(421, "4.3.2 service shutting down; try again later")
}

pub fn bare_line_ending() -> SmtpReply {
    answer(
        521,
        "5.5.2 bare CR or LF line endings are not accepted; closing connection",
    )
}

pub fn input_before_tls() -> SmtpReply {
    answer(
        554,
        "5.5.1 input sent after STARTTLS before the TLS handshake; closing connection",
    )
}

// Command refusals (the session goes on; each counts as an error).

pub fn line_too_long() -> SmtpReply {
    answer(500, "5.5.2 line too long")
}

pub fn improper_pipelining() -> SmtpReply {
    answer(503, "5.5.0 improper use of SMTP command pipelining")
}

pub fn declared_size_too_big() -> SmtpReply {
    answer(552, "5.3.4 message size exceeds fixed maximum message size")
}

pub fn null_sender_refused() -> SmtpReply {
    answer(
        550,
        "5.7.1 mail from the null sender is not accepted here; nobody is registered by it",
    )
}

pub fn too_many_recipients() -> SmtpReply {
    answer(452, "4.5.3 too many recipients")
}

// End of DATA, before registration.

pub fn message_too_big() -> SmtpReply {
    answer(552, "5.3.4 message too big")
}

pub fn header_section_too_big() -> SmtpReply {
    answer(552, "5.3.4 message header section too big")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_replies_get_an_enhanced_code_once() {
        let bare = from_engine(&Response::custom(503, "Bad sequence of commands".into()));
        assert_eq!(bare.text, "5.5.1 Bad sequence of commands");
        let ours = from_engine(&Response::custom(250, "2.1.0 OK".into()));
        assert_eq!(ours.text, "2.1.0 OK");
    }

    #[test]
    fn ehlo_advertises_size_and_pipelining_and_ends_with_a_space_line() {
        let text = String::from_utf8(ehlo("mx.test", 4096, false)).expect("ascii");
        assert!(text.starts_with("250-mx.test\r\n"));
        assert!(text.contains("250-PIPELINING\r\n"));
        assert!(text.contains("250-SIZE 4096\r\n"));
        assert!(text.ends_with("250 ENHANCEDSTATUSCODES\r\n"));
        assert!(!text.contains("STARTTLS"));
    }
}
