//! Sealed bundles (format version 2): a plain bundle, age-encrypted as one payload, inside a
//! clear envelope that keeps `tar xzf` and `./restore verify` working without the key. This
//! module owns the envelope (its clear `manifest.json`), the clear README, and the age glue:
//! parsing recipients and identities, encrypting and opening the payload.
//! `docs/BUNDLE-FORMAT.md` ("Sealed bundles") is the prose of this file.
//!
//! The identity's contents never leave this module's readers: no error, log line or report
//! carries a key, only the path of the identity file.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::layout;
use crate::manifest::{EntryDigest, Manifest};
use crate::{Error, Result};

/// The one encryption scheme of format 2: the age v1 file format.
pub const SCHEME: &str = "age";

/// The clear `manifest.json` of a sealed bundle: enough to judge the archive's entries (names,
/// exact sizes, digests of the ciphertext) and to say what it is, nothing about the contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// [`layout::SEALED_FORMAT_VERSION`].
    pub format_version: u32,
    /// The program that wrote the bundle.
    pub created_by: String,
    /// When the bundle was started (UTC): also in the file name.
    pub created_at: DateTime<Utc>,
    /// `[bundle] name`: also in the file name.
    pub bundle_name: String,
    /// How the payload is sealed.
    pub sealed: Sealing,
    /// Every other entry of the archive (`restore`, `README.txt`, the payload): size and sha256
    /// as they are in the archive (the payload's are the ciphertext's).
    pub entries: Vec<EntryDigest>,
}

/// The `sealed` object of an [`Envelope`]. Unknown fields are refused here: one could change
/// how the payload must be opened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sealing {
    /// [`SCHEME`].
    pub scheme: String,
    /// The entry holding the age-encrypted plain bundle: [`layout::PAYLOAD`].
    pub payload: String,
}

/// True when `manifest.json`'s text is an envelope (format version 2), judged by the version
/// alone: a reader then knows which schema to apply.
pub fn is_envelope(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    serde_json::from_str::<Version>(text).is_ok_and(|v| v.format_version == layout::SEALED_FORMAT_VERSION)
}

impl Envelope {
    /// The envelope of a payload sealed from the plain bundle described by `manifest`.
    pub fn new(manifest: &Manifest, entries: Vec<EntryDigest>) -> Envelope {
        Envelope {
            format_version: layout::SEALED_FORMAT_VERSION,
            created_by: manifest.created_by.clone(),
            created_at: manifest.created_at,
            bundle_name: manifest.bundle_name.clone(),
            sealed: Sealing { scheme: SCHEME.into(), payload: layout::PAYLOAD.into() },
            entries,
        }
    }

    /// Parses and checks an envelope: version, scheme, valid and distinct entry names, the
    /// payload among them.
    pub fn from_json(text: &str) -> Result<Envelope> {
        let e: Envelope = serde_json::from_str(text)?;
        if e.format_version != layout::SEALED_FORMAT_VERSION {
            return Err(Error::Corrupt(format!(
                "{}: format_version {} is no envelope",
                layout::MANIFEST,
                e.format_version
            )));
        }
        if e.sealed.scheme != SCHEME || e.sealed.payload != layout::PAYLOAD {
            return Err(Error::Refused(format!(
                "sealed with {:?} in {:?}: this restore opens only {SCHEME:?} in {:?}; use the restore shipped inside that bundle",
                e.sealed.scheme,
                e.sealed.payload,
                layout::PAYLOAD
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &e.entries {
            layout::check_entry_name(&d.entry)?;
            if d.entry == layout::MANIFEST || d.entry == layout::CHECKSUMS || !seen.insert(d.entry.as_str()) {
                return Err(Error::Unsafe(format!("{}: entry {} listed twice", layout::MANIFEST, d.entry)));
            }
        }
        if !seen.contains(layout::PAYLOAD) {
            return Err(Error::Corrupt(format!(
                "{}: the envelope does not list {}",
                layout::MANIFEST,
                layout::PAYLOAD
            )));
        }
        Ok(e)
    }

    /// Pretty JSON, as written into the bundle.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("envelope serialises")
    }

    /// Entry name -> (size, sha256) of every entry the envelope declares.
    pub fn entries(&self) -> BTreeMap<String, (u64, String)> {
        self.entries.iter().map(|d| (d.entry.clone(), (d.size, d.sha256.clone()))).collect()
    }

    /// What a catalog can know of a sealed bundle it did not write (found on disk): its name and
    /// time, no contents.
    pub fn stub_manifest(&self) -> Manifest {
        Manifest {
            format_version: layout::FORMAT_VERSION,
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            bundle_name: self.bundle_name.clone(),
            source_host: Default::default(),
            postgres: Vec::new(),
            sqlite: Vec::new(),
            files: Vec::new(),
            support: Vec::new(),
            services: Default::default(),
            requirements: Vec::new(),
            warnings: vec!["sealed bundle indexed from its clear envelope: its contents are known only with the identity (packer verify --identity FILE)".into()],
            notes: Vec::new(),
            n8n: None,
            docker: None,
        }
    }
}

/// The clear `README.txt` of a sealed bundle: how to open it, with this tool or by hand.
pub fn readme(file_name: &str) -> String {
    let stem = file_name.strip_suffix(".tar.gz").unwrap_or(file_name);
    format!(
        "This is a sealed n8n_backup bundle (format 2): everything but this file, the static
`restore` binary and the checksums is encrypted with age (https://age-encryption.org) to the
recipients configured in packer.toml ([bundle] recipients). Without a matching identity
(private key) nothing inside can be read; integrity can be checked by anyone.

Check it (no key needed):     ./restore verify
Restore (the key is needed):  ./restore --identity /path/to/key.txt
  (or RESTORE_IDENTITY_FILE=/path/to/key.txt ./restore; an ssh-ed25519 recipient's key is the
  OpenSSH private key, e.g. ~/.ssh/id_ed25519; a passphrase-protected key asks for it)

Open by hand with the age CLI (Debian package `age`): {payload} is a plain bundle
(format 1, a .tar.gz) encrypted as one age file:
  sha256sum -c checksums.sha256
  mkdir opened && age -d -i key.txt {payload} | tar xz -C opened
  cd opened && sha256sum -c checksums.sha256 && ./restore verify

Bundle: {stem}
",
        payload = layout::PAYLOAD
    )
}

/// A parsed recipient of `[bundle] recipients`.
pub type Recipient = Box<dyn age::Recipient + Send>;

/// Parses one recipient: an age X25519 key (`age1...`) or an OpenSSH public key line
/// (`ssh-ed25519 AAAA... [comment]`, `ssh-rsa` too). The error says what was wrong without
/// repeating more than the key's start.
pub fn parse_recipient(s: &str) -> std::result::Result<Recipient, String> {
    let s = s.trim();
    let shown: String = s.chars().take(24).collect();
    let shown = if s.chars().count() > 24 { format!("{shown}...") } else { shown };
    if s.starts_with("age1") {
        return s
            .parse::<age::x25519::Recipient>()
            .map(|r| Box::new(r) as Recipient)
            .map_err(|e| format!("recipient {shown:?} is not a valid age X25519 key: {e}"));
    }
    if s.starts_with("ssh-") {
        return s.parse::<age::ssh::Recipient>().map(|r| Box::new(r) as Recipient).map_err(|e| {
            let why = match e {
                age::ssh::ParseRecipientKeyError::Ignore => "not a key".to_string(),
                age::ssh::ParseRecipientKeyError::Invalid(w) => w.to_string(),
                age::ssh::ParseRecipientKeyError::RsaModulusTooLarge => "RSA modulus too large".into(),
                age::ssh::ParseRecipientKeyError::RsaModulusTooSmall => "RSA modulus below 2048 bits".into(),
                age::ssh::ParseRecipientKeyError::Unsupported(t) => format!("unsupported key type {t}"),
                _ => "not a usable SSH key".into(),
            };
            format!("recipient {shown:?} is not a usable SSH public key: {why}")
        });
    }
    Err(format!("recipient {shown:?} is neither an age key (age1...) nor an SSH public key (ssh-ed25519 ...)"))
}

/// Recipients from a recipients file (age's format: one per line, `#` comments, blank lines).
pub fn recipients_file_lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

/// The writer [`seal`] returns: call its `finish` to write the last chunk.
pub type Sealer<W> = age::stream::StreamWriter<W>;

/// Encrypts what is written to the returned writer to every recipient (each can decrypt alone).
pub fn seal<W: Write>(recipients: &[Recipient], out: W) -> io::Result<Sealer<W>> {
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient))
        .map_err(|e| io::Error::other(format!("age: {e}")))?;
    enc.wrap_output(out)
}

/// The identities of one identity file, for opening sealed bundles.
pub struct Identity {
    path: PathBuf,
    ids: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl std::fmt::Debug for Identity {
    // Never the key: only where it came from.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.path.display())
    }
}

impl Identity {
    /// Reads an identity file: age's (`AGE-SECRET-KEY-1...` lines, as `age-keygen` writes) or an
    /// OpenSSH private key (ed25519 or RSA). A passphrase-protected one (an `age -p` file, an
    /// encrypted OpenSSH key) is decrypted now, with the passphrase asked on the terminal
    /// (`/dev/tty`, echo off); without a terminal that is a refusal saying what to do.
    pub fn load(path: &Path) -> Result<Identity> {
        let bad = |why: String| Error::Refused(format!("identity {}: {why}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading identity", path, e))?;
        if bytes.starts_with(b"age-encryption.org/") {
            let passphrase = passphrase_for(path, "an age passphrase-encrypted identity (age -p)")?;
            let dec = age::Decryptor::new(&bytes[..]).map_err(|e| bad(format!("not an age file ({e})")))?;
            if !dec.is_scrypt() {
                return Err(bad("an age file that is not passphrase-encrypted is no identity".into()));
            }
            let scrypt = age::scrypt::Identity::new(passphrase);
            let mut plain = Vec::new();
            dec.decrypt(std::iter::once(&scrypt as &dyn age::Identity))
                .map_err(|e| match e {
                    age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                        bad("wrong passphrase".into())
                    }
                    e => bad(e.to_string()),
                })?
                .read_to_end(&mut plain)
                .map_err(|e| bad(format!("decrypting: {e}")))?;
            return Self::from_age_text(path, &plain);
        }
        if bytes.starts_with(b"-----BEGIN") {
            let key = age::ssh::Identity::from_buffer(&bytes[..], Some(path.display().to_string()))
                .map_err(|e| bad(format!("not a usable OpenSSH private key ({e})")))?;
            let key = match key {
                age::ssh::Identity::Unencrypted(_) => key,
                age::ssh::Identity::Encrypted(enc) => {
                    let passphrase = passphrase_for(path, "a passphrase-protected SSH key")?;
                    age::ssh::Identity::from(enc.decrypt(passphrase).map_err(|_| bad("wrong passphrase".into()))?)
                }
                age::ssh::Identity::Unsupported(_) => {
                    return Err(bad("unsupported SSH key type (use ed25519 or RSA)".into()))
                }
            };
            return Ok(Identity { path: path.into(), ids: vec![Box::new(key)] });
        }
        Self::from_age_text(path, &bytes)
    }

    fn from_age_text(path: &Path, text: &[u8]) -> Result<Identity> {
        let bad = |why: String| Error::Refused(format!("identity {}: {why}", path.display()));
        let file = age::IdentityFile::from_buffer(io::BufReader::new(text))
            .map_err(|e| bad(format!("not an age identity file ({e})")))?;
        let ids = file.into_identities().map_err(|e| bad(format!("{e}")))?;
        if ids.is_empty() {
            return Err(bad("no identity in the file (expected AGE-SECRET-KEY-1... lines)".into()));
        }
        Ok(Identity { path: path.into(), ids })
    }

    /// Where the identity was read from (safe to print).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a sealed payload: reads the age header from `r` and returns the plaintext reader.
    /// No identity matching any recipient is a refusal (exit 5: nothing was changed); a damaged
    /// header is corruption.
    pub fn open<R: Read>(&self, r: R) -> std::result::Result<age::stream::StreamReader<R>, OpenError> {
        let dec = age::Decryptor::new(r).map_err(|e| self.classify(e))?;
        if dec.is_scrypt() {
            return Err(OpenError::Damaged("the payload is passphrase-encrypted, not sealed to recipients".into()));
        }
        dec.decrypt(self.ids.iter().map(|i| i.as_ref() as &dyn age::Identity)).map_err(|e| self.classify(e))
    }

    fn classify(&self, e: age::DecryptError) -> OpenError {
        match e {
            age::DecryptError::NoMatchingKeys => OpenError::WrongKey(format!(
                "the identity in {} matches none of this bundle's recipients: wrong key (use the key of a recipient in [bundle] recipients of the packer.toml that wrote it)",
                self.path.display()
            )),
            age::DecryptError::KeyDecryptionFailed => {
                OpenError::WrongKey(format!("the key in {} could not be decrypted", self.path.display()))
            }
            e => OpenError::Damaged(e.to_string()),
        }
    }
}

/// The passphrase of a protected identity, asked on the controlling terminal; without one a
/// refusal saying how to go on.
fn passphrase_for(path: &Path, what: &str) -> Result<age::secrecy::SecretString> {
    match ask_passphrase(&format!("passphrase for {} ({what}): ", path.display())) {
        Some(Ok(p)) => Ok(p.into()),
        Some(Err(e)) => Err(Error::io("reading the passphrase from", "/dev/tty", e)),
        None => Err(Error::Refused(format!(
            "identity {}: {what}, and there is no terminal to ask for its passphrase: run this on a terminal, or pass an unprotected copy (age -d -o key.txt FILE, or cp KEY k && ssh-keygen -p -N '' -f k) and remove it afterwards",
            path.display()
        ))),
    }
}

/// Reads one line from `/dev/tty` with echo off. `None` when there is no controlling terminal.
fn ask_passphrase(prompt: &str) -> Option<io::Result<String>> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
    let old = tcgetattr(&tty).ok()?;
    Some((|| {
        let mut quiet = old.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        quiet.local_modes.insert(LocalModes::ECHONL);
        (&tty).write_all(prompt.as_bytes())?;
        tcsetattr(&tty, OptionalActions::Flush, &quiet)?;
        let mut line = String::new();
        let read = io::BufRead::read_line(&mut io::BufReader::new(&tty), &mut line);
        // Echo back on whatever happened.
        let restored = tcsetattr(&tty, OptionalActions::Flush, &old);
        read?;
        restored?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    })())
}

/// Why a payload did not open.
#[derive(Debug)]
pub enum OpenError {
    /// The identity is not one of the recipients.
    WrongKey(String),
    /// The ciphertext is damaged (header, MAC).
    Damaged(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bad recipients are named (by their start) and say why; good ones of both kinds parse.
    #[test]
    fn recipients_are_validated() {
        let id = age::x25519::Identity::generate();
        let good = id.to_public().to_string();
        parse_recipient(&good).unwrap();
        parse_recipient("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOUIukqIBkvmccSCwcvHv8JM2VGHvSRyblhHrAAGTeC/ comment")
            .unwrap();
        for bad in ["age1notakey", "ssh-ed25519 AAAA", "-----BEGIN PRIVATE", "AGE-SECRET-KEY-1XYZ"] {
            let e = parse_recipient(bad).err().unwrap();
            assert!(e.contains(&bad.chars().take(10).collect::<String>()), "{e}");
        }
    }

    /// What one recipient seals, its identity opens; another identity is told it is the wrong key.
    #[test]
    fn seal_and_open() {
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        let t = tempfile::tempdir().unwrap();
        let recipients = vec![parse_recipient(&a.to_public().to_string()).unwrap()];
        let mut w = seal(&recipients, Vec::new()).unwrap();
        w.write_all(b"plain bundle bytes").unwrap();
        let sealed = w.finish().unwrap();

        let key_a = t.path().join("a.txt");
        std::fs::write(&key_a, format!("# test\n{}\n", age::secrecy::ExposeSecret::expose_secret(&a.to_string())))
            .unwrap();
        let mut out = Vec::new();
        Identity::load(&key_a).unwrap().open(&sealed[..]).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"plain bundle bytes");

        let key_b = t.path().join("b.txt");
        std::fs::write(&key_b, age::secrecy::ExposeSecret::expose_secret(&b.to_string())).unwrap();
        match Identity::load(&key_b).unwrap().open(&sealed[..]) {
            Err(OpenError::WrongKey(m)) => assert!(m.contains("b.txt") && !m.contains("AGE-SECRET"), "{m}"),
            _ => panic!("the wrong key opened the payload"),
        }
    }

    #[test]
    fn envelope_round_trips_and_is_recognised() {
        let e = Envelope {
            format_version: layout::SEALED_FORMAT_VERSION,
            created_by: "t".into(),
            created_at: Utc::now(),
            bundle_name: "n".into(),
            sealed: Sealing { scheme: SCHEME.into(), payload: layout::PAYLOAD.into() },
            entries: vec![EntryDigest { entry: layout::PAYLOAD.into(), size: 3, sha256: "a".repeat(64) }],
        };
        let text = e.to_json();
        assert!(is_envelope(&text));
        assert_eq!(Envelope::from_json(&text).unwrap(), e);
        assert!(!is_envelope(r#"{"format_version":1}"#));
    }
}
