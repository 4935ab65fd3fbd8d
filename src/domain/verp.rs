//! VERP envelope senders: each reply goes out from `local+TOKEN@domain`,
//! where `local@domain` is the configured envelope sender and TOKEN a random
//! value stored with the outbox row. A delivery report that comes back to
//! that address names exactly one reply of ours; nobody who has not seen the
//! reply's envelope can name one, so a forged report cannot mark an
//! arbitrary address bouncing.

use crate::domain::EmailAddress;

/// Hex characters in a token (128 random bits).
const TOKEN_LEN: usize = 32;

/// The base address VERP senders are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verp {
    base: EmailAddress,
}

impl Verp {
    pub fn new(base: EmailAddress) -> Self {
        Self { base }
    }

    /// A fresh random token.
    pub fn new_token() -> String {
        let mut bytes = [0u8; TOKEN_LEN / 2];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The envelope sender carrying `token`.
    pub fn address_for(&self, token: &str) -> String {
        format!("{}+{token}@{}", self.base.local_part(), self.base.domain())
    }

    /// The token `address` carries, when it is one of our VERP senders (local
    /// part and domain compared without ASCII case: some systems lowercase
    /// what they bounce to).
    pub fn token_of(&self, address: &EmailAddress) -> Option<String> {
        if !address.domain().eq_ignore_ascii_case(self.base.domain()) {
            return None;
        }
        let local = address.local_part().to_ascii_lowercase();
        let prefix = format!("{}+", self.base.local_part().to_ascii_lowercase());
        let token = local.strip_prefix(&prefix)?;
        (token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| token.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verp_address_carries_its_token_back() {
        let verp = Verp::new(EmailAddress::parse("bounces@registrar.example").expect("valid"));
        let token = Verp::new_token();
        let address = verp.address_for(&token);
        assert!(address.starts_with("bounces+"), "{address}");
        let back = EmailAddress::parse(&address.to_ascii_uppercase()).expect("valid");
        assert_eq!(verp.token_of(&back), Some(token));
        for other in [
            "bounces@registrar.example",
            "bounces+abc@registrar.example",
            "support+0123456789abcdef0123456789abcdef@registrar.example",
            "bounces+0123456789abcdef0123456789abcdef@elsewhere.example",
        ] {
            let address = EmailAddress::parse(other).expect("valid");
            assert_eq!(verp.token_of(&address), None, "{other}");
        }
    }
}
