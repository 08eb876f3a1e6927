//! State that is stored or printed as a word (`"ok"`, `"pending-deletion"`, `"deep"`): enums
//! whose words are defined once, beside the variants. The words are the ones the catalog and
//! `--json` carried before these were enums, so existing catalogs and consumers read the same;
//! a typo in the code fails to compile, and an unknown word read back (a newer packer's, a hand
//! edit) is an [`UnknownWord`] naming what was read and what is known, never a guess.

use std::fmt;

/// A word that is not one of an enum's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    /// What the word was meant to be (`bundle status`, `verify_depth`).
    pub what: &'static str,
    /// The word read.
    pub word: String,
    /// Every word known.
    pub known: &'static [&'static str],
}

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} is not one of {} (written by a newer packer, or edited by hand?)",
            self.what,
            self.word,
            self.known.join(", ")
        )
    }
}

impl std::error::Error for UnknownWord {}

/// Defines an enum stored and printed as words: serde (the same words), `as_str`, `Display`
/// (padding honoured, for tables) and `FromStr` (an unknown word is an [`UnknownWord`]).
///
/// ```ignore
/// words! {
///     /// A bundle's state.
///     pub enum Status("bundle status") {
///         /// On disk.
///         Ok = "ok",
///     }
/// }
/// ```
#[macro_export]
macro_rules! words {
    ($(#[$m:meta])* pub enum $name:ident($what:literal) { $($(#[$vm:meta])* $var:ident = $word:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $word)] $var,)+
        }

        impl $name {
            /// Every word, in declaration order.
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            /// The word stored and printed.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::words::UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$var),)+
                    _ => Err($crate::words::UnknownWord { what: $what, word: s.to_string(), known: $name::WORDS }),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::words! {
        /// A test enum.
        pub enum Probe("probe") {
            /// One.
            One = "one",
            /// Two words.
            TwoWords = "two-words",
        }
    }

    /// Words round-trip through FromStr, Display and serde alike; an unknown word names itself
    /// and the known ones.
    #[test]
    fn words_round_trip_and_unknown_is_an_error() {
        for (v, w) in [(Probe::One, "one"), (Probe::TwoWords, "two-words")] {
            assert_eq!(v.as_str(), w);
            assert_eq!(w.parse::<Probe>(), Ok(v));
            assert_eq!(serde_json::to_value(v).unwrap(), w);
            assert_eq!(serde_json::from_value::<Probe>(w.into()).unwrap(), v);
        }
        assert_eq!(format!("[{:<5}]", Probe::One), "[one  ]");
        let e = "One".parse::<Probe>().unwrap_err().to_string();
        assert!(e.contains("probe \"One\" is not one of one, two-words"), "{e}");
        assert!(serde_json::from_value::<Probe>("three".into()).is_err());
    }
}
