//! `argus moments`: the analyst's command line over a running Argus's moment API.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use crate::config::Config;

pub struct SearchRequest {
    pub query: Option<String>,
    pub image: Option<PathBuf>,
    pub cameras: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: usize,
    /// Ask the service to rerank the best moments with its LLM.
    pub rerank: bool,
    pub api: Option<String>,
    pub json: bool,
}

/// The API address from `http.listen`, reachable from this machine.
fn default_api(config: &Config) -> String {
    let mut address = config.http.listen;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{address}")
}

/// Runs the search and prints the moments (or the JSON answer).
pub fn search(config: &Config, request: SearchRequest) -> anyhow::Result<()> {
    let api = request.api.clone().unwrap_or_else(|| default_api(config));
    let api = api.trim_end_matches('/');
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let token = config
        .http
        .read_token
        .clone()
        .or_else(|| config.http.api_token.clone())
        .filter(|t| !t.is_empty());
    let mut parameters: Vec<(&str, String)> = vec![("limit", request.limit.to_string())];
    if !request.cameras.is_empty() {
        parameters.push(("camera", request.cameras.join(",")));
    }
    parameters.extend(request.since.clone().map(|v| ("since", v)));
    parameters.extend(request.until.clone().map(|v| ("until", v)));
    let response = match (&request.query, &request.image) {
        (_, Some(image)) => {
            let bytes =
                std::fs::read(image).with_context(|| format!("cannot read {}", image.display()))?;
            let mut call = agent
                .post(format!("{api}/api/v1/moments/by-image"))
                .query_pairs(parameters.iter().map(|(k, v)| (*k, v.as_str())));
            if let Some(token) = &token {
                call = call.header("Authorization", format!("Bearer {token}"));
            }
            call.send(&bytes[..])
        }
        (Some(query), None) => {
            parameters.push(("q", query.clone()));
            if request.rerank {
                parameters.push(("rerank", "true".into()));
            }
            let mut call = agent
                .get(format!("{api}/api/v1/moments"))
                .query_pairs(parameters.iter().map(|(k, v)| (*k, v.as_str())));
            if let Some(token) = &token {
                call = call.header("Authorization", format!("Bearer {token}"));
            }
            call.call()
        }
        (None, None) => anyhow::bail!("give a query text, or --image FILE"),
    };
    let mut response = response.with_context(|| {
        format!("no Argus API answers at {api} (is `argus run` running? --api sets the address)")
    })?;
    let status = response.status();
    let body: Value = response
        .body_mut()
        .read_json()
        .with_context(|| format!("{api} answered {status} without JSON"))?;
    if !status.is_success() {
        let message = body["error"].as_str().unwrap_or("no explanation given");
        anyhow::bail!("{message} (HTTP {})", status.as_u16());
    }
    if request.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    print_moments(&body, api);
    Ok(())
}

fn print_moments(body: &Value, api: &str) {
    let moments = body["moments"].as_array().cloned().unwrap_or_default();
    if moments.is_empty() {
        println!("no matching moments");
        return;
    }
    for (rank, moment) in moments.iter().enumerate() {
        let time = |field: &str| {
            moment[field]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc())
        };
        let (Some(start), Some(end)) = (time("start"), time("end")) else {
            continue;
        };
        let mut evidence: Vec<String> = moment["evidence"]["ocr"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|line| format!("“{line}”"))
                    .collect()
            })
            .unwrap_or_default();
        for (field, label) in [("visual", "looks"), ("rerank", "LLM")] {
            if let Some(score) = moment["evidence"][field].as_f64() {
                evidence.push(format!("{label} {score:.2}"));
            }
        }
        println!(
            "{:>2}. {:.3}  {:<16} {} → {}  ({:.0} s){}",
            rank + 1,
            moment["score"].as_f64().unwrap_or(0.0),
            moment["camera_id"].as_str().unwrap_or("?"),
            start.format("%Y-%m-%d %H:%M:%S"),
            end.format("%H:%M:%S"),
            (end - start).num_milliseconds() as f64 / 1e3,
            if evidence.is_empty() {
                String::new()
            } else {
                format!("  {}", evidence.join(" / "))
            }
        );
        if let Some(thumbnail) = moment["thumbnail"].as_str() {
            println!("    {api}{thumbnail}");
        }
    }
    println!(
        "({} method, {} windows scored, {:.1} ms)",
        body["method"].as_str().unwrap_or("?"),
        body["candidates"],
        body["took_ms"].as_f64().unwrap_or(0.0)
    );
}
