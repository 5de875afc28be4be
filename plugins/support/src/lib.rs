//! `draft_reply`: drafts a customer-support reply about an order, from what the agent claims
//! about it (its status and amount). The tool checks nothing: it writes down the agent's
//! claims, and the `fact-check` policy (plugins/policies/fact-check) compares them with the
//! orders database before the reply goes anywhere. Read-only: it declares no effects.
//!
//! Output: `{"order_id": N, "reply": "Dear <customer>, your order <N> status: <status>,
//! amount: <amount>. ..."}`, the amount with two decimals.
//!
//! Expectations (checked by `tests/all/policies.rs`): the reply states `status: <status>`
//! and `amount: <amount>` exactly as given, so that a wrong claim is denied by `fact-check`
//! naming the fact, and a right one passes unchanged.

use moat_guest::serde_json::{json, Value};
use moat_guest::{export_tools, Deserialize, JsonSchema, Tool, ToolError};

/// What the agent believes about the order.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Draft {
    /// The order the customer asks about.
    order_id: i64,
    /// The order's status, one word (`open`, `shipped`, `delivered`, ...).
    status: String,
    /// The order's total amount.
    amount: f64,
    /// The customer's name, for the greeting.
    customer: String,
}

fn draft_reply(draft: Draft) -> Result<Value, ToolError> {
    let status = draft.status.trim();
    if status.is_empty() || status.contains(char::is_whitespace) {
        return Err(ToolError::InvalidInput(format!("status `{status}` is not one word")));
    }
    if !draft.amount.is_finite() {
        return Err(ToolError::InvalidInput(format!("amount {} is not a number", draft.amount)));
    }
    let reply = format!(
        "Dear {}, your order {} status: {status}, amount: {:.2}. Thank you for shopping with \
         us; reply to this message if anything is unclear.",
        draft.customer.trim(),
        draft.order_id,
        draft.amount
    );
    Ok(json!({ "order_id": draft.order_id, "reply": reply }))
}

export_tools!(Tool::new(
    "draft_reply",
    "Drafts a reply to a customer about their order, stating the order's status and amount \
     as given. The reply is checked against the orders database before it is used.",
    draft_reply
));
