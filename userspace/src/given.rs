//! Values as the command line gives them, shared by every module that takes one.

/// A value as the admin wrote it and what it means: the config keeps the admin's
/// spelling (`--rate eth0:1:800`, `--numfile 2K`), the code uses the meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct Given<T> {
    pub value: T,
    pub text: String,
}

impl<T> Given<T> {
    pub fn of(text: &str, value: T) -> Self {
        Self { value, text: text.trim().to_string() }
    }
}

/// `all`, or one item (`--ipdel all`, `--netif_del all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sel<T> {
    All,
    One(T),
}
