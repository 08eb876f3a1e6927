//! What the bundle knows about n8n: the manifest section, the workflow checksum (defined so that
//! anyone can recompute it from n8n's public API), the encryption key (found, fingerprinted and
//! proven against a real credential, never printed), and the import shape of a workflow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::digest::hex;

/// The manifest's `n8n` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct N8nInfo {
    /// The database entry n8n's data came from (`databases/n8n.dump`).
    pub database_entry: String,
    /// `postgres` or `sqlite`.
    pub database_kind: String,
    /// Name of the newest row of n8n's `migrations` table: the schema level.
    #[serde(default)]
    pub schema_level: Option<String>,
    /// Number of migrations applied.
    #[serde(default)]
    pub migrations: u32,
    /// n8n release, from a packed compose file's image tag, when one shows it.
    #[serde(default)]
    pub release: Option<String>,
    /// The encryption key: where it was found, its fingerprint, whether it decrypted a credential.
    pub encryption_key: KeyInfo,
    /// Every workflow.
    pub workflows: Vec<WorkflowSummary>,
    /// Every credential (never the encrypted data).
    pub credentials: Vec<CredentialSummary>,
}

/// The encryption key as the manifest records it (never the key itself).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeyInfo {
    /// The packed file that holds it (original path), when found.
    #[serde(default)]
    pub found_in: Option<String>,
    /// [`fingerprint`] of the key.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// True when it decrypted a credential of the packed database.
    #[serde(default)]
    pub proven: bool,
}

/// A workflow as listed in the manifest and metadata/workflows.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkflowSummary {
    /// n8n's id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Active.
    pub active: bool,
    /// Archived, where the schema has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// createdAt as stored.
    pub created_at: String,
    /// updatedAt as stored.
    pub updated_at: String,
    /// versionId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Number of nodes.
    pub nodes: usize,
    /// Distinct node types, sorted.
    pub node_types: Vec<String>,
    /// Tag names, sorted.
    pub tags: Vec<String>,
    /// [`workflow_checksum`].
    pub checksum: String,
    /// The entry holding the whole workflow in import shape.
    pub entry: String,
}

/// A credential as listed (id, name, type, times): never its data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CredentialSummary {
    /// n8n's id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Type (`slackApi`).
    #[serde(rename = "type")]
    pub kind: String,
    /// createdAt as stored.
    pub created_at: String,
    /// updatedAt as stored.
    pub updated_at: String,
}

/// A number as JavaScript's `JSON.stringify` writes it: integers without a fraction (`2.0` is
/// `2`), shortest round-trip digits, exponent form below 1e-6 and from 1e21 (`1e+21`).
pub fn js_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= (1u64 << 53) {
            return i.to_string();
        }
    }
    if let Some(u) = n.as_u64() {
        if u <= (1u64 << 53) {
            return u.to_string();
        }
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    js_f64(f)
}

fn js_f64(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    if f == 0.0 {
        return "0".into(); // -0 too
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, as ECMAScript requires.
    let e = format!("{:e}", f.abs());
    let (mantissa, exp) = e.split_once('e').expect("exponent form");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp.parse::<i32>().expect("exponent") + 1;
    let sign = if f < 0.0 { "-" } else { "" };
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let es = if e >= 0 { format!("+{e}") } else { e.to_string() };
        if k == 1 {
            format!("{digits}e{es}")
        } else {
            format!("{}.{}e{es}", &digits[..1], &digits[1..])
        }
    };
    format!("{sign}{body}")
}

/// Canonical JSON: object keys sorted (by code point), no whitespace, numbers as JavaScript
/// writes them, strings escaped as `JSON.stringify` does (non-ASCII left as is).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&js_number(n)),
        // serde_json escapes exactly what JSON.stringify escapes: '"', '\\', control characters.
        Value::String(s) => out.push_str(&serde_json::to_string(s).expect("string serialises")),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let sorted: BTreeMap<&String, &Value> = o.iter().collect();
            out.push('{');
            for (i, (k, x)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("string serialises"));
                out.push(':');
                write_canonical(x, out);
            }
            out.push('}');
        }
    }
}

/// The workflow checksum: hex sha256 of the canonical JSON of
/// `{"connections": <connections>, "nodes": <nodes sorted by node name>}`.
pub fn workflow_checksum(nodes: &Value, connections: &Value) -> String {
    let mut nodes = nodes.as_array().cloned().unwrap_or_default();
    nodes.sort_by(|a, b| {
        a.get("name").and_then(Value::as_str).unwrap_or("").cmp(b.get("name").and_then(Value::as_str).unwrap_or(""))
    });
    let doc = serde_json::json!({ "connections": connections, "nodes": nodes });
    hex(&Sha256::digest(canonical_json(&doc).as_bytes()))
}

/// A short, non-reversible identifier of a key: the first 16 hex digits of sha256("n8n-key:" +
/// key). Enough to tell two keys apart, useless to recover one.
pub fn fingerprint(key: &str) -> String {
    hex(&Sha256::digest(format!("n8n-key:{key}").as_bytes()))[..16].to_string()
}

/// Decrypts an n8n credential's `data` (base64 of "Salted__" + 8-byte salt + AES-256-CBC
/// ciphertext, key and IV from OpenSSL's EVP_BytesToKey with MD5 and one round). Returns the
/// plaintext, which the caller must never print: it is only used to prove a key works.
pub fn decrypt_credential(data: &str, key: &str) -> Result<Vec<u8>, String> {
    use aes::cipher::{block_padding::Pkcs7, BlockModeDecrypt, KeyIvInit};
    use base64::Engine;
    use md5::Md5;

    let raw = base64::engine::general_purpose::STANDARD.decode(data.trim()).map_err(|e| format!("not base64: {e}"))?;
    if raw.len() < 32 || &raw[..8] != b"Salted__" {
        return Err("not an OpenSSL salted ciphertext".into());
    }
    let (salt, ct) = (&raw[8..16], &raw[16..]);
    // EVP_BytesToKey: D1 = MD5(pass + salt), Di = MD5(D(i-1) + pass + salt); key||iv = D1 D2 D3.
    let pass: Vec<u8> = key.chars().map(|c| c as u32 as u8).collect(); // latin1, as n8n does
    let mut material = Vec::with_capacity(48);
    let mut prev: Vec<u8> = Vec::new();
    while material.len() < 48 {
        let mut h = Md5::new();
        h.update(&prev);
        h.update(&pass);
        h.update(salt);
        prev = h.finalize().to_vec();
        material.extend_from_slice(&prev);
    }
    let dec = cbc::Decryptor::<aes::Aes256>::new_from_slices(&material[..32], &material[32..48])
        .map_err(|e| e.to_string())?;
    let mut buf = ct.to_vec();
    let plain = dec.decrypt_padded::<Pkcs7>(&mut buf).map_err(|_| "wrong key (bad padding)".to_string())?;
    // A wrong key gives valid padding about once in 256 tries; n8n's plaintext is JSON.
    serde_json::from_slice::<Value>(plain).map_err(|_| "wrong key (not JSON)".to_string())?;
    Ok(plain.to_vec())
}

/// Finds `N8N_ENCRYPTION_KEY` in a file's text: `.env` lines (`KEY=value`, quotes removed), a
/// compose file's `environment:` (`- KEY=value` or `KEY: value`; `${...}` references are not
/// values), or n8n's own config file (`{"encryptionKey": "..."}`).
pub fn find_key(text: &str) -> Option<String> {
    if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(text) {
        if let Some(Value::String(k)) = o.get("encryptionKey") {
            return Some(k.clone());
        }
    }
    for line in text.lines() {
        let l = line.trim().trim_start_matches("- ").trim_start_matches("export ").trim();
        let Some(rest) = l.strip_prefix("N8N_ENCRYPTION_KEY") else { continue };
        let rest = rest.trim_start();
        let value = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':'))?.trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        if !value.is_empty() && !value.contains("${") {
            return Some(value.to_string());
        }
    }
    None
}

/// The n8n release from a compose file's `image: ...n8n:<tag>` line.
pub fn release_from_compose(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim().strip_prefix("image:")?.trim().trim_matches(|c| c == '"' || c == '\'');
        let (repo, tag) = l.rsplit_once(':')?;
        (repo.ends_with("n8n") && tag.chars().next().is_some_and(|c| c.is_ascii_digit())).then(|| tag.to_string())
    })
}

/// Compares dotted versions numerically (`2.10.0` > `2.8.4`).
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |s: &str| {
        s.split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    parse(a).cmp(&parse(b))
}

/// Node types referenced by credentials in a workflow's nodes: (type, id, name) triples from
/// each node's `credentials` object.
pub fn credential_refs(nodes: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for node in nodes.as_array().into_iter().flatten() {
        if let Some(Value::Object(creds)) = node.get("credentials") {
            for (kind, r) in creds {
                let id = r.get("id").and_then(Value::as_str).unwrap_or("").to_string();
                let name = r.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                out.push((kind.clone(), id, name));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Workflows matching a search (case-insensitive, in name, id, tags and node types) and the
/// active filter.
pub fn filter_workflows<'a>(info: &'a N8nInfo, search: Option<&str>, active_only: bool) -> Vec<&'a WorkflowSummary> {
    let needle = search.map(str::to_lowercase);
    info.workflows
        .iter()
        .filter(|w| !active_only || w.active)
        .filter(|w| match &needle {
            None => true,
            Some(n) => {
                w.name.to_lowercase().contains(n)
                    || w.id.to_lowercase().contains(n)
                    || w.tags.iter().any(|t| t.to_lowercase().contains(n))
                    || w.node_types.iter().any(|t| t.to_lowercase().contains(n))
            }
        })
        .collect()
}

/// The workflows table, for `packer show --workflows` and `restore list`.
pub fn render_workflows(workflows: &[&WorkflowSummary]) -> String {
    let mut s = format!(
        "{:<18} {:<6} {:<8} {:>5}  {:<24} {:<20} NAME\n",
        "ID", "ACTIVE", "ARCHIVED", "NODES", "UPDATED", "TAGS"
    );
    for w in workflows {
        s += &format!(
            "{:<18} {:<6} {:<8} {:>5}  {:<24} {:<20} {}\n",
            w.id,
            if w.active { "yes" } else { "no" },
            match w.archived {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            w.nodes,
            w.updated_at,
            w.tags.join(","),
            w.name
        );
    }
    s += &format!("{} workflow(s)\n", workflows.len());
    s
}

/// The credentials table (never any secret).
pub fn render_credentials(info: &N8nInfo) -> String {
    let mut s = format!("{:<18} {:<24} {:<24} NAME\n", "ID", "TYPE", "UPDATED");
    for c in &info.credentials {
        s += &format!("{:<18} {:<24} {:<24} {}\n", c.id, c.kind, c.updated_at, c.name);
    }
    let key = &info.encryption_key;
    s += &format!(
        "{} credential(s); encryption key: {}\n",
        info.credentials.len(),
        match (&key.found_in, &key.fingerprint) {
            (Some(p), Some(f)) =>
                format!("in {p}, fingerprint {f}{}", if key.proven { ", proven to decrypt" } else { "" }),
            _ => "NOT IN THE BUNDLE (credentials cannot be decrypted after a restore)".into(),
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected strings are ECMAScript's own outputs (Number.prototype.toString), not ours.
    #[test]
    fn numbers_as_javascript_writes_them() {
        let cases = [
            ("2.0", "2"),
            ("-0.0", "0"),
            ("0.1", "0.1"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("123456789012345678901234", "1.2345678901234569e+23"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("1.5e-10", "1.5e-10"),
            ("-12.5", "-12.5"),
            ("9007199254740993", "9007199254740992"),
            ("42", "42"),
            ("100", "100"),
            ("3.14159", "3.14159"),
        ];
        for (input, want) in cases {
            let v: Value = serde_json::from_str(input).unwrap();
            assert_eq!(canonical_json(&v), want, "{input}");
        }
    }

    #[test]
    fn canonical_form_sorts_keys_and_keeps_unicode() {
        let v: Value = serde_json::from_str(r#"{"b": [1.0, {"z": null, "a": "é\n\"x\""}], "a": true}"#).unwrap();
        assert_eq!(canonical_json(&v), r#"{"a":true,"b":[1,{"a":"é\n\"x\"","z":null}]}"#);
    }

    #[test]
    fn checksum_ignores_node_order_and_formatting() {
        let n1: Value = serde_json::from_str(r#"[{"name":"B","position":[1.0,2]},{"name":"A"}]"#).unwrap();
        let n2: Value = serde_json::from_str(r#"[{"name":"A"},{"position":[1,2.0],"name":"B"}]"#).unwrap();
        let c: Value = serde_json::json!({});
        assert_eq!(workflow_checksum(&n1, &c), workflow_checksum(&n2, &c));
        let n3: Value = serde_json::from_str(r#"[{"name":"A"},{"position":[1,3],"name":"B"}]"#).unwrap();
        assert_ne!(workflow_checksum(&n1, &c), workflow_checksum(&n3, &c));
    }

    #[test]
    fn finds_keys_where_n8n_keeps_them() {
        assert_eq!(find_key("A=1\nN8N_ENCRYPTION_KEY=\"abc def\"\n").as_deref(), Some("abc def"));
        assert_eq!(
            find_key("services:\n  n8n:\n    environment:\n      - N8N_ENCRYPTION_KEY=k1\n").as_deref(),
            Some("k1")
        );
        assert_eq!(find_key("    environment:\n      N8N_ENCRYPTION_KEY: 'k2'\n").as_deref(), Some("k2"));
        assert_eq!(find_key("      - N8N_ENCRYPTION_KEY=${N8N_ENCRYPTION_KEY}\n"), None);
        assert_eq!(find_key(r#"{"encryptionKey":"k3"}"#).as_deref(), Some("k3"));
        assert_eq!(release_from_compose("    image: docker.n8n.io/n8nio/n8n:2.8.4\n").as_deref(), Some("2.8.4"));
        assert_eq!(version_cmp("2.10.0", "2.8.4"), std::cmp::Ordering::Greater);
    }

    /// A ciphertext made by the openssl command line (not by this code) decrypts with the right
    /// key and is refused with a wrong one.
    #[test]
    fn decrypts_openssl_ciphertext() {
        let key = "test-key-123";
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s' '{{\"token\":\"s3cret\"}}' | openssl enc -aes-256-cbc -md md5 -a -A -salt -pass pass:{key}")])
            .output()
            .expect("openssl");
        assert!(out.status.success());
        let data = String::from_utf8(out.stdout).unwrap();
        assert_eq!(decrypt_credential(&data, key).unwrap(), br#"{"token":"s3cret"}"#);
        assert!(decrypt_credential(&data, "other").is_err());
        assert!(decrypt_credential("bm90IHNhbHRlZA==", key).is_err());
    }
}
