//! `[escalation]` of `moat.toml`: how a person is asked, how long moat waits, and where the
//! approval queue is served over HTTP.

use crate::units::Millis;
use serde::Deserialize;

/// `[escalation]`: how moat asks a person whether one exact call may go ahead.
///
/// ```toml
/// [escalation]
/// channel = "auto"            # "auto", "terminal", "queue" or "deny"
/// client = "never"            # "allowed": the MCP client's user may decide by elicitation
/// timeout = "5min"            # no decision in time means deny
/// http = "127.0.0.1:7878"     # serve the approval queue on loopback (optional)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// Where the question goes. `auto` (the default) queues the request when `http` (or
    /// `[admin] http`) is set;
    /// otherwise it asks at the terminal when moat runs interactively (standard input and
    /// standard error are both terminals), and denies when nobody is there to ask. `queue`
    /// always queues it for `moat approvals` (or HTTP) to decide.
    #[serde(default)]
    pub channel: Channel,
    /// Whether an MCP client that declares elicitation may decide its own call's escalation
    /// (its user answers a form). `never` (the default, over stdio and HTTP alike): the
    /// client is the agent's side, and an automated agent could accept its own high-stakes
    /// calls; the question goes to `channel`. `allowed`: the operator knows a person answers
    /// the client's forms (a desktop client). `channel = "deny"` denies whatever this says.
    #[serde(default)]
    pub client: ClientDecides,
    /// How long one escalation waits for a decision; when it runs out the call is denied.
    /// Default 5 minutes.
    #[serde(default = "default_timeout")]
    pub timeout: Millis,
    /// Serve the approval queue over HTTP at this address (`127.0.0.1:7878`, `[::1]:7878`,
    /// `localhost:7878`). Loopback only: any other address stops moat at start. Needs the
    /// `queue` channel (or `auto`, which then always queues).
    #[serde(default)]
    pub http: Option<String>,
}

impl Default for EscalationConfig {
    fn default() -> EscalationConfig {
        EscalationConfig {
            channel: Channel::default(),
            client: ClientDecides::Never,
            timeout: default_timeout(),
            http: None,
        }
    }
}

fn default_timeout() -> Millis {
    Millis(5 * 60 * 1000)
}

/// The channel an escalation is asked on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The queue when `http` is set; else the terminal when interactive; else deny.
    #[default]
    Auto,
    /// A prompt on the controlling terminal (`/dev/tty`, never standard input).
    Terminal,
    /// The approval queue in `STATE_DIR/approvals.sqlite`, decided with `moat approvals`
    /// from another process, or over HTTP on loopback.
    Queue,
    /// Nobody is asked: every escalation is denied at once.
    Deny,
}

impl Channel {
    /// The name used in `moat.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Auto => "auto",
            Channel::Terminal => "terminal",
            Channel::Queue => "queue",
            Channel::Deny => "deny",
        }
    }
}

/// `[escalation] client`: whether an MCP client may answer its own call's escalation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientDecides {
    /// Never: the operator's channel decides.
    #[default]
    Never,
    /// When the client declares elicitation (and `channel` is not `deny`).
    Allowed,
}
