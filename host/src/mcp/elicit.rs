//! Escalation through the MCP client: when the client declares the elicitation capability,
//! a call that needs a person's approval is put to the client's user as an
//! `elicitation/create` request (form mode), and their answer decides it.
//!
//! `accept` approves the call, `decline` and `cancel` deny it; no answer within
//! `[escalation] timeout`, or a client that fails to answer, is not an approval either. The
//! question names the tool, the task, who asked and why, and the arguments exactly as the
//! agent sent them; the form has one optional field, `note`, which is recorded with the
//! decision. A client without the capability gets the host's own channel (the approval
//! queue, a terminal, or nobody: deny).

use crate::escalation::{printable, Decision, Escalation, Escalator};
use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema};
use rmcp::service::{ElicitationMode, Peer, ServiceError};
use rmcp::RoleServer;
use std::time::Duration;

/// The longest argument text shown in the question; the rest is cut (the binding hash
/// still covers all of it).
const SHOWN_ARGS: usize = 4000;

/// Asks the user of one MCP client.
pub struct Elicitor {
    peer: Peer<RoleServer>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    /// Who answers, as the audit log records it: `mcp client NAME`.
    client: String,
}

impl Elicitor {
    /// An escalator asking through `peer`, if its client declared form elicitation.
    /// `runtime` runs the request while the call's blocking thread waits.
    pub fn for_client(
        peer: &Peer<RoleServer>,
        runtime: tokio::runtime::Handle,
        timeout: Duration,
    ) -> Option<Elicitor> {
        if !peer.supported_elicitation_modes().contains(&ElicitationMode::Form) {
            return None;
        }
        let name = peer
            .peer_info()
            .map(|info| info.client_info.name.clone())
            .unwrap_or_else(|| "unnamed".to_owned());
        let client = format!("mcp client `{}`", printable(&name, false));
        Some(Elicitor { peer: peer.clone(), runtime, timeout, client })
    }
}

impl Escalator for Elicitor {
    fn decide(&self, escalation: &Escalation) -> Decision {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "note": {
                    "type": "string",
                    "title": "Note",
                    "description": "Optional: why you decided so (kept in the audit log)"
                }
            }
        });
        let serde_json::Value::Object(schema) = schema else {
            return Decision::TimedOut { channel: self.channel() };
        };
        let requested_schema = match ElicitationSchema::from_json_schema(schema) {
            Ok(schema) => schema,
            Err(e) => {
                tracing::error!("the elicitation form is not valid: {e}");
                return Decision::TimedOut { channel: self.channel() };
            }
        };
        let params = ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: question(escalation),
            requested_schema,
        };
        let asked = self.peer.create_elicitation_with_timeout(params, Some(self.timeout));
        let by = self.client.clone();
        let cancel = escalation.cancel.clone();
        let withdrawn = async move {
            while !cancel.is_cancelled() {
                tokio::time::sleep(crate::cancel::CHECK_EVERY).await;
            }
        };
        let answered = self.runtime.block_on(async {
            tokio::select! {
                answer = asked => Some(answer),
                () = withdrawn => None,
            }
        });
        let Some(answered) = answered else {
            return Decision::Denied {
                by: "moat".to_owned(),
                reason: "the call was cancelled; the question is withdrawn".to_owned(),
            };
        };
        match answered {
            Ok(answer) => {
                let note = answer
                    .content
                    .as_ref()
                    .and_then(|content| content.get("note"))
                    .and_then(|note| note.as_str())
                    .map(|note| note.trim().to_owned())
                    .filter(|note| !note.is_empty());
                let said = |what: &str| match &note {
                    Some(note) => format!("{what}: {note}"),
                    None => what.to_owned(),
                };
                match answer.action {
                    ElicitationAction::Accept => Decision::Approved { by },
                    ElicitationAction::Decline => Decision::Denied { by, reason: said("declined") },
                    // Cancel, and whatever later versions of the protocol add: not a yes.
                    _ => Decision::Denied { by, reason: said("cancelled the question") },
                }
            }
            Err(ServiceError::Timeout { .. }) => Decision::TimedOut { channel: self.channel() },
            Err(e) => {
                tracing::warn!(id = %escalation.id, "the client did not answer the escalation: {e}");
                Decision::TimedOut {
                    channel: format!("{} (it failed to answer: {e})", self.channel()),
                }
            }
        }
    }

    fn channel(&self) -> String {
        format!("elicitation by {}", self.client)
    }

    /// The client names itself: moat cannot tell a person from the agent answering.
    fn verifies_who_decides(&self) -> bool {
        false
    }
}

/// What the user is asked, in plain text.
fn question(escalation: &Escalation) -> String {
    let mut args = escalation.args.as_str();
    let mut cut = "";
    if args.len() > SHOWN_ARGS {
        let mut end = SHOWN_ARGS;
        while !args.is_char_boundary(end) {
            end -= 1;
        }
        args = &args[..end];
        cut = " [...]";
    }
    format!(
        "moat asks: may this call go ahead?\n\
         tool: {}\ntask: {}\nasked by: {}\nwhy: {}\narguments: {}{cut}\n\
         Accept to let it run; decline or cancel to refuse it. (request {})",
        escalation.tool,
        printable(&escalation.task, false),
        crate::call::CheckPoint::from_name(&escalation.asked_by)
            .map_or(escalation.asked_by.as_str(), |point| point.asker()),
        printable(&escalation.reason, false),
        printable(args, false),
        escalation.id,
    )
}
