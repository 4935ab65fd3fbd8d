//! Integration tests: the daemon over real sockets, with a real SQLite file
//! and a real capturing SMTP relay. One binary, one link step.

mod support;

mod activation;
mod api;
mod backup;
mod bounces;
mod browser;
mod budgets;
mod config;
mod data_protection;
mod deployment;
mod directory;
mod dkim;
mod envelope;
mod google;
mod http_limits;
mod logging;
mod loops;
mod operations;
mod operator;
mod outbox;
mod portal;
mod postfix;
mod process;
mod recovery;
mod registration;
mod relays;
mod replay;
mod retention;
mod sender_auth;
mod sign_in_limits;
mod smtp_abuse;
mod smtp_intake;
mod smtp_tls;
mod spam_relay;
mod storage;
mod web_security;
mod webhooks;
mod wording;
