//! The mailin glue: the sans-IO `mailin::Session` each session drives, the
//! `Handler` it calls, and how an engine reply is sent. The verb files read
//! the engine's `Response` (its code and `Action`) and nothing more.
//!
//! The engine is our sequencer and nothing more: it knows which command may
//! follow which (RFC 5321's state machine) and answers the commands we do
//! not handle ourselves (NOOP, RSET, VRFY, QUIT, unknown words). Its
//! handler, `Sequencer`, accepts every callback, so a `250` from the engine
//! means "this command is in sequence"; the verb files (`ehlo`, `mail`,
//! `rcpt`, `data`) then run their own checks on facts they hold themselves
//! and answer. When a verb refuses a command the engine already took, it
//! puts the engine back (`rewind_mail`, `rewind_rcpt`), so the engine's
//! state always matches what the client was told.

use crate::smtp::answer;
use crate::smtp::intake::Intake;
use crate::smtp::mail::MailFrom;
use crate::smtp::session::{End, Session};
use mailin::SessionBuilder;
use mailin_embedded::{Action, Handler, Response};
use std::net::IpAddr;

/// The engine of one session.
pub type Engine = mailin::Session<Sequencer>;

/// Builds engines for the listener: one per session.
pub fn builder(hostname: &str, starttls: bool) -> SessionBuilder {
    let mut builder = SessionBuilder::new(hostname);
    if starttls {
        builder.enable_start_tls();
    }
    builder
}

/// Starts the engine for a client.
pub fn start(builder: &SessionBuilder, client_ip: IpAddr) -> Engine {
    builder.build(client_ip, Sequencer)
}

/// The handler the engine calls: it accepts everything, because every check
/// of ours runs in the verb files once the engine has said the command is
/// in sequence. mailin's defaults already answer `250` to HELO, MAIL, RCPT,
/// DATA (which the engine turns into `354`) and end of DATA; the end of
/// DATA must never be an error reply, or the engine stays in DATA.
pub struct Sequencer;

impl Handler for Sequencer {}

/// Puts the engine back to where it was before a MAIL it accepted and we
/// refused: RSET leaves it just after HELO/EHLO, the only state MAIL is
/// accepted in.
pub fn rewind_mail(engine: &mut Engine) {
    let _ = engine.process(b"RSET\r\n");
}

/// Puts the engine back to where it was before the first RCPT of a
/// transaction, which it accepted and we refused: the transaction is opened
/// again with the same MAIL, so the engine still refuses DATA without a
/// recipient. Later refused RCPTs need nothing: the engine's own list of
/// recipients is never read.
pub fn rewind_rcpt(engine: &mut Engine, mail: &MailFrom) {
    rewind_mail(engine);
    let _ = engine.process(&mail.engine_line());
}

impl<I: Intake> Session<I> {
    /// Hands a command line to the engine and sends its reply.
    pub(super) async fn engine_command(&mut self, line: &[u8]) -> Result<(), End> {
        let response = self.engine.process(line);
        self.answer_engine(&response).await
    }

    /// Sends an engine reply: refusals count as errors, `Action::Close`
    /// ends the session.
    pub(super) async fn answer_engine(&mut self, response: &Response) -> Result<(), End> {
        let reply = answer::from_engine(response);
        match response.action {
            Action::NoReply => Ok(()),
            Action::Close => Err(End::Reply(reply)),
            Action::Reply | Action::UpgradeTls if reply.code >= 400 => self.refuse(reply).await,
            Action::Reply | Action::UpgradeTls => self.send(&reply).await,
        }
    }
}
