//! The n8n profile: workflows, tags, credentials (never their data) and the schema level, read
//! from n8n's own tables, on PostgreSQL inside the dump's snapshot and on SQLite from the copy,
//! so the metadata describes exactly what the bundle restores.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use postgres::GenericClient;
use restorer::n8n::{workflow_checksum, CredentialSummary, WorkflowSummary};
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

/// What was read from n8n's tables.
#[derive(Debug, Default)]
pub struct N8nData {
    /// Summaries and, for each, the whole workflow in import shape.
    pub workflows: Vec<(WorkflowSummary, Value)>,
    /// Credentials, listed.
    pub credentials: Vec<CredentialSummary>,
    /// One credential's encrypted data (id, name, data), kept in memory only to prove the key.
    pub sample_credential: Option<(String, String, String)>,
    /// Newest migration name.
    pub schema_level: Option<String>,
    /// Migrations applied.
    pub migrations: u32,
}

/// Columns that n8n stores as JSON text.
const JSON_COLUMNS: [&str; 6] = ["nodes", "connections", "settings", "staticData", "pinData", "meta"];
/// Columns that SQLite stores as 0/1.
const BOOL_COLUMNS: [&str; 2] = ["active", "isArchived"];

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The workflow entry name for an n8n id (ids that are not plain names are hashed).
pub fn entry_for(id: &str) -> String {
    if restorer::layout::check_name("workflow id", id).is_ok() {
        format!("metadata/workflows/{id}.json")
    } else {
        let h = restorer::digest::sha256_reader(id.as_bytes()).map(|d| d.0).unwrap_or_default();
        format!("metadata/workflows/{}.json", &h[..32])
    }
}

/// Builds the summary and the import-shape document of one workflow row.
pub fn summarize(mut row: Map<String, Value>, tags: &[(String, String)]) -> (WorkflowSummary, Value) {
    let nodes = row.get("nodes").cloned().unwrap_or(Value::Array(vec![]));
    let connections = row.get("connections").cloned().unwrap_or(Value::Object(Map::new()));
    let mut node_types: Vec<String> = nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.get("type").and_then(Value::as_str).map(str::to_string))
        .collect();
    node_types.sort();
    node_types.dedup();
    let mut tag_names: Vec<String> = tags.iter().map(|t| t.1.clone()).collect();
    tag_names.sort();
    let id = text(row.get("id"));
    let summary = WorkflowSummary {
        id: id.clone(),
        name: text(row.get("name")),
        active: row.get("active").and_then(Value::as_bool).unwrap_or(false),
        archived: row.get("isArchived").and_then(Value::as_bool),
        created_at: text(row.get("createdAt")),
        updated_at: text(row.get("updatedAt")),
        version_id: row.get("versionId").and_then(Value::as_str).map(str::to_string),
        nodes: nodes.as_array().map_or(0, Vec::len),
        node_types,
        tags: tag_names,
        checksum: workflow_checksum(&nodes, &connections),
        entry: entry_for(&id),
    };
    // The shape `n8n export:workflow` writes and `n8n import:workflow` reads: the entity's
    // columns, with tags as objects.
    row.insert(
        "tags".into(),
        Value::Array(tags.iter().map(|(id, name)| serde_json::json!({"id": id, "name": name})).collect()),
    );
    (summary, Value::Object(row))
}

fn group_tags(pairs: Vec<(String, String, String)>) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (wf, id, name) in pairs {
        out.entry(wf).or_default().push((id, name));
    }
    out
}

fn pg_has(c: &mut impl GenericClient, table: &str) -> Result<bool> {
    Ok(c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&format!("public.{table}")])?.get::<_, bool>(0))
}

/// Reads n8n's tables through a PostgreSQL connection (inside the dump's snapshot transaction).
pub fn read_postgres(c: &mut impl GenericClient) -> Result<N8nData> {
    if !pg_has(c, "workflow_entity")? {
        anyhow::bail!("profile \"n8n\": this database has no workflow_entity table (is it n8n's database?)");
    }
    let has_tags = pg_has(c, "workflows_tags")? && pg_has(c, "tag_entity")?;
    let has_creds = pg_has(c, "credentials_entity")?;
    let has_migrations = pg_has(c, "migrations")?;
    let tags = if has_tags {
        c.query(r#"SELECT wt."workflowId"::text, t.id::text, t.name::text FROM workflows_tags wt JOIN tag_entity t ON t.id = wt."tagId" ORDER BY 1, 3"#, &[])?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    } else {
        Vec::new()
    };
    let tags = group_tags(tags);
    let mut data = N8nData::default();
    // row_to_json keeps json columns' text as n8n wrote it.
    for r in c
        .query("SELECT row_to_json(w)::text FROM workflow_entity w ORDER BY w.id", &[])
        .context("reading workflow_entity")?
    {
        let row: Map<String, Value> = serde_json::from_str(&r.get::<_, String>(0))?;
        let id = text(row.get("id"));
        data.workflows.push(summarize(row, tags.get(&id).map(Vec::as_slice).unwrap_or(&[])));
    }
    if has_creds {
        for r in c.query(r#"SELECT id::text, name::text, type::text, "createdAt"::text, "updatedAt"::text, data FROM credentials_entity ORDER BY id"#, &[]).context("reading credentials_entity")? {
            let summary = CredentialSummary { id: r.get(0), name: r.get(1), kind: r.get(2), created_at: r.get(3), updated_at: r.get(4) };
            if data.sample_credential.is_none() {
                data.sample_credential = Some((summary.id.clone(), summary.name.clone(), r.get(5)));
            }
            data.credentials.push(summary);
        }
    }
    if has_migrations {
        let r = c.query_one("SELECT (SELECT name::text FROM migrations ORDER BY timestamp DESC, id DESC LIMIT 1), count(*) FROM migrations", &[])?;
        data.schema_level = r.get(0);
        data.migrations = r.get::<_, i64>(1) as u32;
    }
    Ok(data)
}

fn sqlite_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(restorer::digest::hex(b)),
    }
}

fn sqlite_rows(conn: &rusqlite::Connection, sql: &str) -> Result<Vec<Map<String, Value>>> {
    let mut stmt = conn.prepare(sql)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_string).collect();
    let rows = stmt.query_map([], |r| {
        let mut m = Map::new();
        for (i, n) in names.iter().enumerate() {
            let mut v = sqlite_value(r.get_ref(i)?);
            if JSON_COLUMNS.contains(&n.as_str()) {
                if let Value::String(s) = &v {
                    v = serde_json::from_str(s).unwrap_or(v);
                }
            }
            if BOOL_COLUMNS.contains(&n.as_str()) {
                if let Some(i) = v.as_i64() {
                    v = Value::Bool(i != 0);
                }
            }
            m.insert(n.clone(), v);
        }
        Ok(m)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Reads n8n's tables from a SQLite database (the bundle's copy).
pub fn read_sqlite(conn: &rusqlite::Connection) -> Result<N8nData> {
    let has = |t: &str| -> Result<bool> {
        Ok(conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [t], |r| {
            r.get::<_, i64>(0)
        })? > 0)
    };
    if !has("workflow_entity")? {
        anyhow::bail!("profile \"n8n\": this database has no workflow_entity table (is it n8n's database?)");
    }
    let mut tags = Vec::new();
    if has("workflows_tags")? && has("tag_entity")? {
        for r in sqlite_rows(
            conn,
            r#"SELECT wt."workflowId" AS w, t.id AS id, t.name AS name FROM workflows_tags wt JOIN tag_entity t ON t.id = wt."tagId" ORDER BY 1, 3"#,
        )? {
            tags.push((text(r.get("w")), text(r.get("id")), text(r.get("name"))));
        }
    }
    let tags = group_tags(tags);
    let mut data = N8nData::default();
    for row in sqlite_rows(conn, "SELECT * FROM workflow_entity ORDER BY id")? {
        let id = text(row.get("id"));
        data.workflows.push(summarize(row, tags.get(&id).map(Vec::as_slice).unwrap_or(&[])));
    }
    if has("credentials_entity")? {
        for r in sqlite_rows(
            conn,
            r#"SELECT id, name, type, "createdAt", "updatedAt", data FROM credentials_entity ORDER BY id"#,
        )? {
            let summary = CredentialSummary {
                id: text(r.get("id")),
                name: text(r.get("name")),
                kind: text(r.get("type")),
                created_at: text(r.get("createdAt")),
                updated_at: text(r.get("updatedAt")),
            };
            if data.sample_credential.is_none() {
                data.sample_credential = Some((summary.id.clone(), summary.name.clone(), text(r.get("data"))));
            }
            data.credentials.push(summary);
        }
    }
    if has("migrations")? {
        let (name, n): (Option<String>, i64) = conn.query_row(
            "SELECT (SELECT name FROM migrations ORDER BY timestamp DESC, id DESC LIMIT 1), count(*) FROM migrations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        data.schema_level = name;
        data.migrations = n as u32;
    }
    Ok(data)
}
