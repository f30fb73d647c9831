//! What a call cost, for the models whose prices are known.

/// USD per million input and output tokens of well-known models.
const PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4-turbo", 10.00, 30.00),
    ("gpt-3.5-turbo", 0.50, 1.50),
    ("o3-mini", 1.10, 4.40),
    ("o4-mini", 1.10, 4.40),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-opus-4", 15.00, 75.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-haiku", 0.25, 1.25),
    ("claude-3-opus", 15.00, 75.00),
    ("deepseek-chat", 0.27, 1.10),
    ("deepseek-reasoner", 0.55, 2.19),
];

/// The cost of a call when the model's price is known. A model matches a
/// table entry exactly or with a date or `-latest` suffix
/// (`gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`); a router's vendor
/// prefix (`openai/gpt-4o`) is ignored. Other models have no known price.
pub fn cost(model: &str, input_tokens: i64, output_tokens: i64) -> Option<f64> {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let (_, input, output) = PRICES
        .iter()
        .find(|(base, _, _)| match name.strip_prefix(base) {
            Some("") | Some("-latest") => true,
            Some(rest) => rest
                .strip_prefix('-')
                .is_some_and(|d| d.len() >= 4 && d[..4].bytes().all(|b| b.is_ascii_digit())),
            None => false,
        })?;
    Some((input_tokens.max(0) as f64 * input + output_tokens.max(0) as f64 * output) / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_match_dated_names_only() {
        assert_eq!(cost("gpt-4o", 1_000_000, 1_000_000), Some(12.5));
        assert_eq!(cost("gpt-4o-2024-08-06", 1_000_000, 0), Some(2.5));
        assert_eq!(cost("gpt-4o-mini", 1_000_000, 1_000_000), Some(0.75));
        assert_eq!(
            cost("openai/gpt-4o-mini-2024-07-18", 0, 1_000_000),
            Some(0.6)
        );
        assert_eq!(
            cost("claude-sonnet-4-20250514", 1_000_000, 1_000_000),
            Some(18.0)
        );
        assert_eq!(cost("claude-3-5-haiku-latest", 1_000_000, 0), Some(0.8));
        assert_eq!(cost("claude-sonnet-4-5", 1, 1), None);
        assert_eq!(cost("llama3", 1, 1), None);
    }
}
