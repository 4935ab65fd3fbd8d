//! Integration tests: the daemon over real sockets, with a real SQLite file
//! and a real capturing SMTP relay. One binary, one link step.

mod support;

mod activation;
mod config;
mod loops;
mod outbox;
mod registration;
mod sender_auth;
mod smtp_intake;
