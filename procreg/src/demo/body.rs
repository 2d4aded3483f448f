//! The demo process body `procreg serve --runner demo` runs: a number of
//! steps, each a durable step that waits a while and appends `step {i}`
//! to a file (a side effect outside the journal), followed by a `progress`
//! event `{ "step": i }`.
//!
//! Payload of its engine processes (registrations must declare the
//! `progress` event type, see [`registration`]):
//!
//! | field | meaning |
//! |---|---|
//! | `steps` | how many steps |
//! | `delay_ms` | how long each step works before writing (default 0) |
//! | `file` | the file each step appends its line to |
//! | `fail_at` | fail with `reason` instead of running this step |
//! | `panic_at` | panic with `reason` instead of running this step |
//! | `flaky_at` | this step writes `step {i} attempt` and fails (retryably) with `reason` on every attempt |
//! | `reason` | the failure or panic text |
//! | `stop_on_abandon` | before each step, stop `Cancelled` when an abandon is requested (default true) |

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use restate_process_registry::{
    ProcessAwaitOutput, ProcessEventAppendRequest, ProcessEventType, ProcessInput,
    ProcessProvenance, ProcessRegistration,
};
use restate_process_registry_services::{BodyError, ProcessBody, RunContext};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// The event type the demo body appends after each step.
pub const PROGRESS: &str = "progress";
/// The engine kind of demo processes.
pub const KIND: &str = "demo.steps";

/// What a demo process does; its engine payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// How many steps.
    pub steps: u32,
    /// How long each step works before writing its line.
    #[serde(default)]
    pub delay_ms: u64,
    /// The side-effect file.
    pub file: PathBuf,
    /// Fail instead of running this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_at: Option<u32>,
    /// Panic instead of running this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_at: Option<u32>,
    /// This step fails, retryably, on every attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flaky_at: Option<u32>,
    /// The failure or panic text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Stop `Cancelled` when an abandon is requested.
    #[serde(default = "stops_on_abandon")]
    pub stop_on_abandon: bool,
}

fn stops_on_abandon() -> bool {
    true
}

/// A registration of a demo process running `plan`.
pub fn registration(id: &str, plan: &Plan) -> ProcessRegistration {
    let payload = serde_json::to_value(plan).unwrap_or_default();
    ProcessRegistration::new(
        id,
        ProcessInput::Engine {
            kind: KIND.into(),
            payload,
        },
        ProcessProvenance::host(),
    )
    .with_extra_event_types([ProcessEventType::any(PROGRESS)])
}

/// The demo body (see the module docs).
pub struct DemoBody;

#[async_trait]
impl ProcessBody for DemoBody {
    async fn run(&self, ctx: &RunContext<'_>) -> Result<ProcessAwaitOutput, BodyError> {
        let plan: Plan = serde_json::from_value(ctx.payload().clone())
            .map_err(|err| BodyError::permanent(format!("not a demo plan: {err}")))?;
        let reason = plan.reason.as_deref().unwrap_or("asked to");
        for step in 1..=plan.steps {
            if plan.stop_on_abandon {
                if let Some(request) = ctx.abandon_requested().await? {
                    return Ok(ProcessAwaitOutput::cancelled(Some(format!(
                        "stopped before step {step}: abandon requested by {}: {}",
                        request.requested_by, request.reason
                    ))));
                }
            }
            if plan.fail_at == Some(step) {
                return Err(BodyError::permanent(format!(
                    "step {step} failed: {reason}"
                )));
            }
            if plan.panic_at == Some(step) {
                panic!("step {step} panicked: {reason}");
            }
            ctx.step(&format!("step {step}"), work(&plan, step)).await?;
            ctx.append(
                ProcessEventAppendRequest::new(PROGRESS, json!({ "step": step }))
                    .with_replay_key(format!("step-{step}")),
            )
            .await?;
        }
        Ok(ProcessAwaitOutput::success(json!({ "steps": plan.steps })))
    }
}

/// One step's work: wait, then append its line to the file (or, for the
/// flaky step, note the attempt and fail).
async fn work(plan: &Plan, step: u32) -> Result<(), BodyError> {
    tokio::time::sleep(Duration::from_millis(plan.delay_ms)).await;
    if plan.flaky_at == Some(step) {
        write_line(plan, &format!("step {step} attempt")).await?;
        let reason = plan.reason.as_deref().unwrap_or("flaky");
        return Err(BodyError::new(format!("step {step} failed: {reason}")));
    }
    write_line(plan, &format!("step {step}")).await
}

/// Appends `line` to the plan's file.
async fn write_line(plan: &Plan, line: &str) -> Result<(), BodyError> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&plan.file)
        .await
        .map_err(|err| BodyError::new(format!("opening {}: {err}", plan.file.display())))?;
    file.write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(|err| BodyError::new(format!("writing {}: {err}", plan.file.display())))?;
    file.flush()
        .await
        .map_err(|err| BodyError::new(format!("writing {}: {err}", plan.file.display())))
}
