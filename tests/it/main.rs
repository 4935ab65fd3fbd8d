//! Integration tests: the daemon over real sockets, with a real SQLite file
//! and a real capturing SMTP relay. One binary, one link step.

mod support;

mod activation;
mod backup;
mod browser;
mod config;
mod data_protection;
mod deployment;
mod logging;
mod loops;
mod operations;
mod operator;
mod outbox;
mod portal;
mod process;
mod registration;
mod replay;
mod sender_auth;
mod smtp_abuse;
mod smtp_intake;
mod smtp_tls;
mod web_security;
