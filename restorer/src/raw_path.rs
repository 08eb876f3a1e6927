//! Paths in JSON, byte-exact. Linux allows any byte but `/` and NUL in a name, JSON strings hold
//! only Unicode: a path that is valid UTF-8 is written as a plain string (JSON escapes newlines,
//! tabs and backslashes losslessly), any other as `{"base64": "<its bytes>"}`. A reader that
//! does not know the object form refuses the manifest instead of misreading a path.
//!
//! Use with `#[serde(with = "crate::raw_path")]` on `PathBuf` fields.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Text(String),
    Bytes { base64: String },
}

/// Serialises a path as a string, or as `{"base64": ...}` when it is not UTF-8.
pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    match path.to_str() {
        Some(t) => s.serialize_str(t),
        None => Repr::Bytes { base64: base64::engine::general_purpose::STANDARD.encode(path.as_os_str().as_bytes()) }
            .serialize(s),
    }
}

/// Reads either form back into the original bytes.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    match Repr::deserialize(d)? {
        Repr::Text(t) => Ok(PathBuf::from(t)),
        Repr::Bytes { base64 } => base64::engine::general_purpose::STANDARD
            .decode(base64.as_bytes())
            .map(|b| PathBuf::from(OsString::from_vec(b)))
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(with = "super")]
        p: PathBuf,
    }

    /// Every byte Linux allows in a name survives JSON.
    #[test]
    fn any_path_round_trips() {
        let mut all: Vec<u8> = b"/x/".to_vec();
        all.extend((1u8..=255).filter(|b| *b != b'/'));
        for raw in [b"/etc/plain.conf".to_vec(), b"/a\nb\tc\\d\"e".to_vec(), b"/latin1-\xe9".to_vec(), all] {
            let t = T { p: PathBuf::from(OsString::from_vec(raw.clone())) };
            let json = serde_json::to_string(&t).unwrap();
            let back: T = serde_json::from_str(&json).unwrap();
            assert_eq!(back.p.as_os_str().as_bytes(), &raw[..], "{json}");
        }
        assert_eq!(serde_json::to_string(&T { p: "/a".into() }).unwrap(), r#"{"p":"/a"}"#);
    }
}
