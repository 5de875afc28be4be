//! The escalation channel a host's configuration asks for, with the approval queue's HTTP
//! server when `[escalation] http` wants one (it lives as long as the channel).

use super::{loopback_addresses, ApprovalServer};
use crate::escalation::{
    interactive, ApprovalQueue, Channel, DenyAll, EscalationConfig, Escalator, QueueEscalator,
    TerminalEscalator,
};
use std::path::Path;
use std::sync::Arc;

/// Builds the channel `config` asks for; the approval queue lives in `state_dir`. Starts the
/// HTTP server of the queue when `config.http` is set (it lives as long as the escalator).
///
/// Fails, saying why, when `http` is not a loopback address or cannot be bound, when `http`
/// is set with a channel that does not use the queue, when the terminal channel was chosen
/// and there is no terminal, or when the queue cannot be opened.
pub fn escalator(
    config: &EscalationConfig,
    state_dir: &Path,
) -> Result<Arc<dyn Escalator>, String> {
    if let Some(address) = &config.http {
        loopback_addresses(address)?;
    }
    let channel = match config.channel {
        Channel::Auto if config.http.is_some() => Channel::Queue,
        Channel::Auto if interactive() => Channel::Terminal,
        // Nobody at a terminal and no queue asked for: a non-interactive session denies.
        Channel::Auto => Channel::Deny,
        chosen => chosen,
    };
    if config.http.is_some() && channel != Channel::Queue {
        return Err(format!(
            "escalation.http serves the approval queue, but escalation.channel is \"{}\": \
             use \"queue\" or \"auto\", or remove http",
            channel.name()
        ));
    }
    let timeout = config.timeout.duration();
    match channel {
        Channel::Deny => Ok(Arc::new(DenyAll)),
        Channel::Terminal => Ok(Arc::new(TerminalEscalator::open(timeout)?)),
        Channel::Auto | Channel::Queue => {
            let queue =
                Arc::new(ApprovalQueue::in_state_dir(state_dir).map_err(|e| e.to_string())?);
            let mut escalator = QueueEscalator::new(queue.clone(), timeout);
            if let Some(address) = &config.http {
                escalator = escalator.with_server(ApprovalServer::start(queue, address)?);
            }
            Ok(Arc::new(escalator))
        }
    }
}
