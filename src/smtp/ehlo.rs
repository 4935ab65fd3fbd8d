//! `EHLO` and `HELO`: the client's name, our extensions, and a fresh start.
//!
//! Either one ends any open transaction and forgets XFORWARD attributes.
//! mailin's EHLO reply advertises neither SIZE nor PIPELINING, so ours is
//! written by `answer::ehlo` (with XFORWARD for a relay); the engine still
//! sees the command, to keep the sequence.

use crate::smtp::answer;
use crate::smtp::intake::Intake;
use crate::smtp::session::{End, Session};
use mailin_embedded::Action;

/// The name in an `EHLO`/`HELO` line the engine accepted: the engine only
/// accepts the verb, spaces and one word without spaces before CRLF.
pub fn client_name(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let name = line.get(4..).unwrap_or_default();
    String::from_utf8_lossy(name)
        .trim_start_matches(' ')
        .to_owned()
}

impl<I: Intake> Session<I> {
    pub(super) async fn ehlo(&mut self, line: &[u8]) -> Result<(), End> {
        let response = self.engine.process(line);
        if response.code != 250 || response.action != Action::Reply {
            return self.answer_engine(&response).await;
        }
        self.greeted(line);
        self.pipelining = true;
        let smtp = self.context.smtp();
        let offer = answer::Offer {
            starttls: self.context.tls.is_some() && !self.tls_active,
            xforward: self.relay,
        };
        let lines = answer::ehlo(&smtp.hostname, smtp.max_message_bytes, offer);
        self.context.metrics.smtp_reply(250);
        self.write(&lines).await
    }

    pub(super) async fn helo(&mut self, line: &[u8]) -> Result<(), End> {
        self.pipelining = false;
        let response = self.engine.process(line);
        if response.code != 250 || response.action != Action::Reply {
            return self.answer_engine(&response).await;
        }
        self.greeted(line);
        self.send(&answer::hello()).await
    }

    fn greeted(&mut self, line: &[u8]) {
        self.helo = client_name(line);
        self.end_transaction();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_name_is_the_word_after_the_verb() {
        assert_eq!(client_name(b"EHLO client.test\r\n"), "client.test");
        assert_eq!(client_name(b"helo   mx.example\r\n"), "mx.example");
    }
}
