//! `*`/`?` patterns, as IAM writes them in actions, resources and `StringLike` conditions, and
//! as EKS matches Fargate selectors.

/// Whether `pattern` matches the whole of `text`: `*` matches any run of characters (none
/// included), `?` exactly one; everything else matches itself, case-sensitively (lower-case
/// both first where the cloud folds case, as IAM does for actions).
///
/// Without recursion: on a mismatch, the last `*` swallows one more character. Linear in
/// practice, quadratic at worst, never exponential, whatever a user writes.
///
/// ```
/// use porter_identity_core::provider::wildcard_match;
/// assert!(wildcard_match("arn:aws:iam::*:role/shop-?", "arn:aws:iam::1:role/shop-a"));
/// assert!(!wildcard_match("shop", "Shop"));
/// ```
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(wildcard_match(
            "arn:aws:iam::*:role/a?c",
            "arn:aws:iam::1:role/abc"
        ));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("shop-*", "shop-"));
        assert!(!wildcard_match(
            "arn:aws:iam::1:role/A",
            "arn:aws:iam::1:role/a"
        ));
        assert!(!wildcard_match("a*b", "acd"));
        assert!(!wildcard_match("shop", "shop2"));
        assert!(wildcard_match(
            "*@p.iam.gserviceaccount.com",
            "a@p.iam.gserviceaccount.com"
        ));
        assert!(wildcard_match("sh?p", "shop"));
        assert!(!wildcard_match("*b", "aba "));
        // A pattern built to make a backtracking matcher blow up answers at once.
        let long = "a".repeat(5_000);
        assert!(!wildcard_match(&format!("{}b", "*a".repeat(50)), &long));
    }
}
