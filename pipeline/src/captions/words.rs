//! The words of queries and of what perception saw, as moment search and question rules
//! match them: lower-case letters and digits, stop words dropped, and one misread letter
//! forgiven in longer words (OCR misreads a letter now and then).

use std::collections::HashSet;

/// Words too common to be evidence.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "at", "in", "on", "of", "to", "is", "was", "did", "when", "where", "what",
    "who", "and", "or", "by", "for", "with", "from", "it", "its", "this", "that", "show", "me",
    "find",
];

/// Whether `word` (lower case) is too common to be evidence.
pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// Lower-case words of `text`: letters and digits.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The query's content words (stop words dropped, unless nothing else is left).
pub fn query_terms(query: &str) -> Vec<String> {
    let all: Vec<String> = words(query);
    let content: Vec<String> = all
        .iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .cloned()
        .collect();
    let mut terms = if content.is_empty() { all } else { content };
    let mut seen = HashSet::new();
    terms.retain(|t| seen.insert(t.clone()));
    terms
}

/// Whether query term `term` matches document word `word`: equal, or for words of five
/// letters or more one edit apart (OCR misreads a letter now and then).
pub fn term_matches(term: &str, word: &str) -> bool {
    term == word || (term.chars().count() >= 5 && within_one_edit(term, word))
}

fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    if long.len() - short.len() > 1 {
        return false;
    }
    let mut i = 0;
    while i < short.len() && short[i] == long[i] {
        i += 1;
    }
    if short.len() == long.len() {
        short[i + 1..] == long[i + 1..] || i == short.len()
    } else {
        short[i..] == long[i + 1..]
    }
}
