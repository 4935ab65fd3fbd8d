//! Settings that name one of a few choices (`refusal = "drop"`): each enum
//! lists its names once, and parsing and the error message come from that
//! list.

/// The value named `text` in `names`, or an error listing the names.
///
/// # Errors
/// `"{text}" is not one of a, b, c`, for the settings report.
pub fn one_of<T: Copy>(text: &str, names: &[(&str, T)]) -> Result<T, String> {
    names
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let list: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
            format!("{text:?} is not one of {}", list.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::one_of;

    #[test]
    fn a_name_parses_and_anything_else_lists_the_choices() {
        let names = [("on", true), ("off", false)];
        assert_eq!(one_of("off", &names), Ok(false));
        assert_eq!(
            one_of("maybe", &names),
            Err("\"maybe\" is not one of on, off".to_owned())
        );
    }
}
