//! `fetch`: GET a URL from an origin allow-listed for the tool, and return its text. Which
//! origins, how large and how slow is the grant's business, not the tool's.

use moat_guest::http::{self, HttpError, Request};
use moat_guest::{export_tools, Deserialize, Effect, JsonSchema, Serialize, Tool, ToolError};

/// What to fetch.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    /// An absolute http or https URL.
    url: String,
}

/// The response.
#[derive(Serialize)]
struct Page {
    status: u16,
    content_type: Option<String>,
    text: String,
}

fn fetch(args: Args) -> Result<Page, ToolError> {
    let request = Request { method: "GET".into(), url: args.url, headers: vec![], body: None };
    let response = http::send(&request).map_err(|error| match error {
        HttpError::NotGranted(m) | HttpError::Denied(m) | HttpError::LimitExceeded(m) => ToolError::Denied(m),
        HttpError::Timeout => ToolError::Failed("the server did not answer in time".into()),
        HttpError::Transport(m) => ToolError::Failed(m),
    })?;
    let content_type = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .map(|h| h.value.clone());
    Ok(Page { status: response.status, content_type, text: String::from_utf8_lossy(&response.body).into_owned() })
}

export_tools!(Tool::new("fetch", "Fetches a URL (GET) and returns its status and text.", fetch)
    .effects(&[Effect::Network]));
