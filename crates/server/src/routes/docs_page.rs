//! `/docs`: one HTML page rendered from the OpenAPI document — a table of contents,
//! every operation with an example request, every schema. No scripts, no fonts or
//! styles from elsewhere: the server may be offline.

use std::fmt::Write;

use serde_json::{Value, json};

/// The page for `doc` (the served OpenAPI document); examples address `base_url`.
pub fn render(doc: &Value, base_url: &str) -> String {
    let page = Page { doc, base_url };
    let mut h = String::with_capacity(64 * 1024);
    h.push_str(HEAD);
    page.contents(&mut h);
    h.push_str("<main><h1>callhub API</h1>");
    h.push_str(&format!(
        "<p>{} The machine-readable document is <a href=\"/openapi.json\">/openapi.json</a> \
         (OpenAPI 3.1). Errors are RFC 9457 <code>application/problem+json</code> (the \
         <a href=\"#schema-Problem\">Problem</a> schema). Unless marked <em>public</em>, an \
         operation needs <code>Authorization: Bearer $TOKEN</code> with the \
         <code>accessToken</code> from <a href=\"#op-post-login\">POST /login</a>.</p>",
        inline(doc["info"]["description"].as_str().unwrap_or(""))
    ));
    for (tag, description, ops) in page.groups() {
        let _ = write!(
            h,
            "<section><h2 id=\"tag-{0}\">{0}</h2><p>{1}</p>",
            esc(&tag),
            inline(&description)
        );
        for (path, method, op) in ops {
            page.operation(&mut h, path, method, op);
        }
        h.push_str("</section>");
    }
    h.push_str("<section><h2 id=\"schemas\">Schemas</h2>");
    for (name, schema) in page.schemas() {
        page.schema(&mut h, name, schema);
    }
    h.push_str("</section></main></body></html>");
    h
}

const HEAD: &str = "<!doctype html><html lang=en><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width,initial-scale=1\"><title>callhub API</title><style>\
:root{--fg:#1d2330;--muted:#5b6475;--line:#e3e6ec;--code:#f3f5f8;--accent:#0b63c5}\
*{box-sizing:border-box}body{margin:0;font:15px/1.55 system-ui,-apple-system,Segoe UI,sans-serif;color:var(--fg);display:flex}\
nav{position:sticky;top:0;height:100vh;overflow:auto;width:17rem;flex:none;padding:1.2rem 1rem;border-right:1px solid var(--line);background:#fafbfc;font-size:13.5px}\
nav h2{font-size:.8rem;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:1.1rem 0 .3rem}\
nav ul{list-style:none;margin:0;padding:0}nav li{margin:.1rem 0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}\
nav a{color:var(--fg);text-decoration:none}nav a:hover{color:var(--accent)}\
main{flex:1;min-width:0;max-width:62rem;padding:1.2rem 2.2rem 4rem}h1{margin:.2rem 0 .6rem}\
h2{margin:2.2rem 0 .4rem;padding-bottom:.2rem;border-bottom:2px solid var(--line);text-transform:capitalize}\
h3{margin:1.8rem 0 .3rem;font-size:1.05rem}h4{margin:.8rem 0 .2rem;font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}\
a{color:var(--accent)}code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--code);border-radius:4px}\
code{padding:.05em .3em}pre{padding:.7rem .9rem;overflow:auto;border:1px solid var(--line)}pre code{padding:0;background:none}\
.op{border:1px solid var(--line);border-radius:8px;padding:.2rem 1rem .8rem;margin:1.2rem 0}\
.m{display:inline-block;min-width:4.2rem;text-align:center;border-radius:4px;padding:.05rem .4rem;margin-right:.5rem;color:#fff;font-size:.78rem;font-weight:700;letter-spacing:.03em}\
.get{background:#1f7a4d}.post{background:#0b63c5}.delete{background:#b3261e}.put,.patch{background:#8a5a00}\
nav .m{min-width:3.2rem;font-size:.68rem;padding:0 .25rem;margin-right:.35rem}\
.path{font:600 15px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}.pub{color:var(--muted);font-size:.85rem;font-weight:400;margin-left:.6rem}\
.sdk{color:var(--muted);font-size:.85rem}\
table{border-collapse:collapse;width:100%;margin:.2rem 0}th{text-align:left;font-size:.8rem;color:var(--muted);font-weight:600}\
th,td{padding:.3rem .6rem .3rem 0;border-bottom:1px solid var(--line);vertical-align:top}td:first-child{white-space:nowrap}\
.t{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#6b3fa0;white-space:nowrap}.req{color:#b3261e;font-weight:700}\
.answers td:first-child{width:4rem}.answers td.t{width:13rem}\
.params,.fields{table-layout:fixed}.params th:nth-child(1),.fields th:nth-child(1){width:14rem}\
.params th:nth-child(2){width:4.5rem}.params th:nth-child(3),.fields th:nth-child(2){width:15rem}td.t{white-space:normal}\
.variant{border-left:3px solid var(--line);padding-left:.8rem;margin:.6rem 0}\
</style></head><body>";

/// An operation: its path, its method and the OpenAPI object.
type Operation<'a> = (&'a str, &'a str, &'a Value);
/// A tag's name and description, and its operations.
type Group<'a> = (String, String, Vec<Operation<'a>>);

struct Page<'a> {
    doc: &'a Value,
    base_url: &'a str,
}

impl<'a> Page<'a> {
    /// Operations under their first tag, in the document's tag order.
    fn groups(&self) -> Vec<Group<'a>> {
        let doc: &'a Value = self.doc;
        let mut groups: Vec<Group<'a>> = doc["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let name = t["name"].as_str().unwrap_or("").to_owned();
                let description = t["description"].as_str().unwrap_or("").to_owned();
                (name, description, Vec::new())
            })
            .collect();
        for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let tag = op["tags"][0].as_str().unwrap_or("other");
                let i = match groups.iter().position(|(n, ..)| n == tag) {
                    Some(i) => i,
                    None => {
                        groups.push((tag.to_owned(), String::new(), Vec::new()));
                        groups.len() - 1
                    }
                };
                groups[i].2.push((path.as_str(), method.as_str(), op));
            }
        }
        groups.retain(|(.., ops)| !ops.is_empty());
        groups
    }

    /// The named schemas worth a section: objects, enums and unions (not aliases
    /// of a primitive such as `i64`, which are shown inline).
    fn schemas(&self) -> Vec<(&'a str, &'a Value)> {
        let doc: &'a Value = self.doc;
        doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, s)| !is_primitive_alias(s))
            .map(|(n, s)| (n.as_str(), s))
            .collect()
    }

    fn contents(&self, h: &mut String) {
        h.push_str("<nav aria-label=Contents><strong><a href=\"#\">callhub API</a></strong>");
        for (tag, _, ops) in self.groups() {
            let _ = write!(h, "<h2><a href=\"#tag-{0}\">{0}</a></h2><ul>", esc(&tag));
            for (path, method, _) in ops {
                let _ = write!(
                    h,
                    "<li><a href=\"#{}\"><span class=\"m {method}\">{}</span>{}</a></li>",
                    op_anchor(method, path),
                    method.to_uppercase(),
                    esc(path)
                );
            }
            h.push_str("</ul>");
        }
        h.push_str("<h2><a href=\"#schemas\">Schemas</a></h2><ul>");
        for (name, _) in self.schemas() {
            let _ = write!(h, "<li><a href=\"#schema-{0}\">{0}</a></li>", esc(name));
        }
        h.push_str("</ul></nav>");
    }

    fn resolve(&self, v: &'a Value) -> &'a Value {
        match v["$ref"].as_str() {
            Some(r) => {
                let doc: &'a Value = self.doc;
                &doc["components"]["schemas"][ref_name(r)]
            }
            None => v,
        }
    }

    /// A schema's type as a reader writes it: `string | null`, `CallLog[]`, links to schemas.
    fn type_html(&self, v: &Value) -> String {
        if let Some(r) = v["$ref"].as_str() {
            let name = ref_name(r);
            let target = self.resolve(v);
            if is_primitive_alias(target) {
                return self.type_html(target);
            }
            return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
        }
        if let Some(variants) = v["oneOf"].as_array().or(v["anyOf"].as_array()) {
            // `T | null`, as TypeScript readers write it: the null branch last.
            let mut parts: Vec<String> = variants.iter().map(|x| self.type_html(x)).collect();
            parts.sort_by_key(|p| p == "null");
            return parts.join(" | ");
        }
        if let Some(values) = v["enum"].as_array() {
            let parts: Vec<String> = values.iter().map(|x| esc(&x.to_string())).collect();
            return parts.join(" | ");
        }
        let one = |t: &str| match t {
            "array" => format!("{}[]", self.type_html(&v["items"])),
            "object" if v["additionalProperties"].is_object() => {
                format!("map of {}", self.type_html(&v["additionalProperties"]))
            }
            "string" | "integer" | "number" => match v["format"].as_str() {
                Some(f) if !f.starts_with("int") && !f.starts_with("uint") => {
                    format!("{t} ({})", esc(f))
                }
                _ => t.to_owned(),
            },
            t => t.to_owned(),
        };
        match &v["type"] {
            Value::String(t) => one(t),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .map(one)
                .collect::<Vec<_>>()
                .join(" | "),
            _ => "any".into(),
        }
    }

    fn operation(&self, h: &mut String, path: &str, method: &str, op: &Value) {
        let public = op["security"].as_array().is_some_and(|s| {
            s.iter()
                .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
        });
        let _ = write!(
            h,
            "<div class=op><h3 id=\"{}\"><span class=\"m {method}\">{}</span><span class=path>{}</span>{}</h3>",
            op_anchor(method, path),
            method.to_uppercase(),
            esc(path),
            if public {
                "<span class=pub>public</span>"
            } else {
                ""
            }
        );
        for key in ["summary", "description"] {
            if let Some(text) = op[key].as_str() {
                let _ = write!(h, "<p>{}</p>", inline(text));
            }
        }
        if let Some(id) = op["operationId"].as_str() {
            let _ = write!(h, "<div class=sdk>SDK: <code>{}</code></div>", esc(id));
        }
        let params: Vec<&Value> = op["parameters"].as_array().into_iter().flatten().collect();
        if !params.is_empty() {
            h.push_str("<h4>Parameters</h4><table class=params><tr><th>name</th><th>in</th><th>type</th><th>meaning</th></tr>");
            for p in &params {
                let _ = write!(
                    h,
                    "<tr><td><code>{}</code>{}</td><td>{}</td><td class=t>{}</td><td>{}</td></tr>",
                    esc(p["name"].as_str().unwrap_or("")),
                    required_mark(p["required"].as_bool() == Some(true)),
                    esc(p["in"].as_str().unwrap_or("")),
                    self.type_html(&p["schema"]),
                    inline(p["description"].as_str().unwrap_or(""))
                );
            }
            h.push_str("</table>");
        }
        let body = op["requestBody"]["content"]
            .as_object()
            .and_then(|c| c.iter().next());
        if let Some((content_type, media)) = body {
            let _ = write!(
                h,
                "<h4>Body</h4><div><span class=t>{}</span> as <code>{}</code></div>",
                self.type_html(&media["schema"]),
                esc(content_type)
            );
        }
        let _ = write!(
            h,
            "<h4>Example</h4><pre><code>{}</code></pre>",
            esc(&self.example_request(path, method, op, public))
        );
        h.push_str("<h4>Answers</h4><table class=answers>");
        for (status, r) in op["responses"].as_object().into_iter().flatten() {
            let body = r["content"]
                .as_object()
                .and_then(|c| c.values().next())
                .filter(|c| !c["schema"].is_null())
                .map(|c| self.type_html(&c["schema"]))
                .unwrap_or_default();
            let _ = write!(
                h,
                "<tr><td><strong>{}</strong></td><td>{}</td><td class=t>{body}</td></tr>",
                esc(status),
                inline(r["description"].as_str().unwrap_or(""))
            );
        }
        h.push_str("</table></div>");
    }

    /// A request a reader can paste: curl for HTTP, a browser line for the WebSocket.
    fn example_request(&self, path: &str, method: &str, op: &Value, public: bool) -> String {
        let mut url_path = path.to_owned();
        let mut query = Vec::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or("");
            let value = self.example(&p["schema"], name, 0);
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            match p["in"].as_str() {
                Some("path") => url_path = url_path.replace(&format!("{{{name}}}"), &value),
                Some("query") if p["required"].as_bool() == Some(true) => {
                    query.push(format!("{name}={value}"))
                }
                _ => {}
            }
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        let url = format!("{}{url_path}{query}", self.base_url);
        if op["responses"]["101"].is_object() {
            let ws = url.replacen("http", "ws", 1);
            return format!(
                "// in a browser (elsewhere, send Authorization: Bearer $TOKEN instead)\n\
                 const socket = new WebSocket(\"{ws}?access_token=\" + token);\n\
                 socket.onmessage = (m) => console.log(JSON.parse(m.data));"
            );
        }
        let mut cmd = String::from("curl -fsS");
        if method != "get" {
            let _ = write!(cmd, " -X {}", method.to_uppercase());
        }
        let _ = write!(cmd, " '{url}'");
        if !public {
            cmd.push_str(" \\\n  -H \"Authorization: Bearer $TOKEN\"");
        }
        if let Some((content_type, media)) = op["requestBody"]["content"]
            .as_object()
            .and_then(|c| c.iter().next())
        {
            let body = media["example"]
                .as_object()
                .map(|_| media["example"].clone())
                .unwrap_or_else(|| self.example(&media["schema"], "", 0));
            let body = serde_json::to_string_pretty(&body).unwrap_or_default();
            let _ = write!(
                cmd,
                " \\\n  -H 'Content-Type: {content_type}' \\\n  -d '{}'",
                body.replace('\'', "'\\''")
            );
        }
        cmd
    }

    /// A value for `schema`: its own example where it has one, else one built from
    /// its type (objects with their required and non-null fields), `name` giving
    /// strings a plausible look.
    fn example(&self, schema: &Value, name: &str, depth: usize) -> Value {
        if let Some(e) = schema.get("example") {
            return e.clone();
        }
        if let Some(e) = schema["examples"].as_array().and_then(|e| e.first()) {
            return e.clone();
        }
        if depth > 16 {
            return Value::Null;
        }
        if schema["$ref"].is_string() {
            return self.example(self.resolve(schema), name, depth + 1);
        }
        if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
            return first.clone();
        }
        if let Some(variants) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
            let some = variants.iter().find(|v| v["type"] != "null");
            return some.map_or(Value::Null, |v| self.example(v, name, depth + 1));
        }
        let ty = match &schema["type"] {
            Value::String(t) => t.as_str(),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null"),
            _ => "object",
        };
        match ty {
            "object" => {
                let required = required_fields(schema);
                let props = schema["properties"].as_object();
                // Fields that are optional and may be null are left out; an object with
                // nothing required shows all its fields, or it would say nothing.
                let keep = |k: &str, v: &Value| {
                    required.is_empty() || required.contains(&k) || !nullable(v)
                };
                let mut out = serde_json::Map::new();
                for (k, v) in props.into_iter().flatten() {
                    if keep(k, v) {
                        out.insert(k.clone(), self.example(v, k, depth + 1));
                    }
                }
                Value::Object(out)
            }
            "array" => json!([self.example(&schema["items"], name, depth + 1)]),
            "integer" | "number" => json!(1),
            "boolean" => json!(false),
            "string" => json!(string_example(schema["format"].as_str(), name)),
            _ => Value::Null,
        }
    }

    fn schema(&self, h: &mut String, name: &str, s: &Value) {
        let _ = write!(h, "<h3 id=\"schema-{0}\">{0}</h3>", esc(name));
        if let Some(d) = s["description"].as_str() {
            let _ = write!(h, "<p>{}</p>", inline(d));
        }
        if s["enum"].is_array() {
            let _ = write!(
                h,
                "<div>One of <span class=t>{}</span></div>",
                self.type_html(s)
            );
        }
        if let Some(variants) = s["oneOf"].as_array() {
            h.push_str("<div>One of:</div>");
            for v in variants {
                h.push_str("<div class=variant>");
                if let Some(d) = v["description"].as_str() {
                    let _ = write!(h, "<p>{}</p>", inline(d));
                }
                self.fields(h, v);
                h.push_str("</div>");
            }
        }
        self.fields(h, s);
    }

    fn fields(&self, h: &mut String, s: &Value) {
        let Some(props) = s["properties"].as_object() else {
            return;
        };
        let required = required_fields(s);
        h.push_str("<table class=fields><tr><th>field</th><th>type</th><th>meaning</th></tr>");
        for (p, v) in props {
            let _ = write!(
                h,
                "<tr><td><code>{}</code>{}</td><td class=t>{}</td><td>{}</td></tr>",
                esc(p),
                required_mark(required.contains(&p.as_str())),
                self.type_html(v),
                inline(description(v))
            );
        }
        h.push_str("</table>");
    }
}

fn required_fields(schema: &Value) -> Vec<&str> {
    schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn ref_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

fn op_anchor(method: &str, path: &str) -> String {
    let slug: String = path
        .chars()
        .filter(|c| !matches!(c, '{' | '}'))
        .map(|c| if c == '/' { '-' } else { c })
        .collect();
    format!("op-{method}{}", esc(&slug))
}

fn required_mark(required: bool) -> &'static str {
    if required {
        " <span class=req title=required>*</span>"
    } else {
        ""
    }
}

/// A named schema that is only a primitive (utoipa names `i64` so).
fn is_primitive_alias(s: &Value) -> bool {
    s["properties"].is_null()
        && s["enum"].is_null()
        && s["oneOf"].is_null()
        && s["type"].as_str().is_some_and(|t| t != "object")
}

fn nullable(v: &Value) -> bool {
    v["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|x| x == "null"))
        || v["oneOf"]
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x["type"] == "null"))
}

/// A field's description, also where utoipa puts it inside the non-null branch.
fn description(v: &Value) -> &str {
    v["description"]
        .as_str()
        .or_else(|| {
            v["oneOf"]
                .as_array()?
                .iter()
                .find_map(|x| x["description"].as_str())
        })
        .unwrap_or("")
}

fn string_example(format: Option<&str>, name: &str) -> String {
    let n = name.to_ascii_lowercase();
    let s = match format {
        Some("uuid") => "3f2b8c1e-5d7a-4c1b-9a2e-6b0f4d8e9c21",
        Some("date-time") => "2026-12-01T09:00:00Z",
        Some("uri") => "https://example.org/callhub-events",
        _ if n.contains("email") => "test@test.de",
        _ if n.contains("phone") => "+4917612345678",
        _ if n.contains("password") => "secret123",
        _ if n.contains("domain") => "ubimax",
        _ if n.contains("url") => "https://example.org/callhub-events",
        _ if n.contains("token") => "…",
        _ if n.contains("title") => "Pump 7",
        _ if n.contains("name") && n.contains("display") => "Tester",
        _ if n == "username" || n.ends_with("userid") => "tester",
        _ if n.contains("name") => "Field service",
        _ => "string",
    };
    s.to_owned()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escapes `text` and renders the Markdown the descriptions use inline: `code`.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        // Odd parts sit between backticks; an unpaired last backtick stays as it is.
        if i % 2 == 1 && text.split('`').count() > i + 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            if i % 2 == 1 {
                out.push('`');
            }
            out.push_str(&esc(part));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_become_code_and_html_is_escaped() {
        assert_eq!(
            inline("writes `Join` <now>"),
            "writes <code>Join</code> &lt;now&gt;"
        );
        assert_eq!(inline("a ` alone"), "a ` alone");
    }

    #[test]
    fn nullable_types_read_as_unions() {
        let doc = json!({"components": {"schemas": {
            "i64": {"type": "integer", "format": "int64"},
            "CallLog": {"type": "object", "properties": {}}}}});
        let page = Page {
            doc: &doc,
            base_url: "",
        };
        assert_eq!(
            page.type_html(&json!({"type": ["string", "null"]})),
            "string | null"
        );
        assert_eq!(
            page.type_html(
                &json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/i64"}]})
            ),
            "integer | null"
        );
        assert_eq!(
            page.type_html(
                &json!({"type": "array", "items": {"$ref": "#/components/schemas/CallLog"}})
            ),
            "<a href=\"#schema-CallLog\">CallLog</a>[]"
        );
    }
}
