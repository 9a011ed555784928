//! A chat line into words, quoted the way a POSIX shell quotes (`shell-words`), and nothing more:
//! no shell runs the line, so `;`, `|`, `$(...)`, backticks and `>` are ordinary characters.

use super::error::{MAX_LEN, ParseError};

/// Split `line` into words. `#` is kept literal: a shell (and `shell-words`) reads a word that
/// starts with `#` as a comment and drops the rest of the line, which would run another command
/// than the one typed. NUL, which no command line holds, stands in for it while splitting.
pub fn split(line: &str) -> Result<Vec<String>, ParseError> {
    if line.len() > MAX_LEN {
        return Err(ParseError::TooLong);
    }
    if line.contains('\0') {
        return Err(ParseError::Invalid(
            "the command holds a NUL character".into(),
        ));
    }
    let words = shell_words::split(&line.replace('#', "\0"))
        .map_err(|e| ParseError::UnterminatedQuote(e.to_string()))?;
    Ok(words.into_iter().map(|w| w.replace('\0', "#")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_like_a_shell_and_metacharacters_stay_literal() {
        assert_eq!(
            split(r#"label pod 'a b' x="y \"z\"" c\ d"#).unwrap(),
            ["label", "pod", "a b", r#"x=y "z""#, "c d"]
        );
        assert_eq!(
            split("get pods; rm -rf / | cat $(id) `x` #c > f").unwrap(),
            [
                "get", "pods;", "rm", "-rf", "/", "|", "cat", "$(id)", "`x`", "#c", ">", "f"
            ]
        );
        assert_eq!(split("  \t ").unwrap(), Vec::<String>::new());
        assert_eq!(split("''").unwrap(), [""]);
        assert_eq!(
            split("scale 'déploiement/ünï'").unwrap(),
            ["scale", "déploiement/ünï"]
        );
        assert!(matches!(
            split("get 'pods"),
            Err(ParseError::UnterminatedQuote(_))
        ));
        assert!(matches!(
            split("get \"pods"),
            Err(ParseError::UnterminatedQuote(_))
        ));
        assert_eq!(split(&"a ".repeat(MAX_LEN)), Err(ParseError::TooLong));
    }
}
