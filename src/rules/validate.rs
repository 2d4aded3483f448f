//! [`Validate`]: the context-free checks of everything a caller sends.
//!
//! Both registries run these before they read or write anything: the
//! in-memory registry at the top of each method, the Restate services while
//! decoding each handler's input. So a refused input is refused by both
//! alike, with the same [`ProcessError::InvalidInput`] text, and nothing is
//! written. The numbers are in [`limits`](super::limits).

use std::collections::BTreeSet;

use super::limits::{
    check_document, check_key, check_optional_document, check_optional_key, check_process_id,
    check_size, check_text, MAX_TRANSFER_IDS,
};
use super::schema::check_schema;
use super::selector::check_selector;
use crate::error::{ProcessError, ProcessResult};
use crate::model::{
    AbandonRequest, LeaseOwnerIdentity, LeaseOwnerLiveness, ProcessAwaitOutput,
    ProcessEventAppendRequest, ProcessEventType, ProcessExternalRef, ProcessHandleDescriptor,
    ProcessIdentity, ProcessInput, ProcessLease, ProcessLeaseCompletion, ProcessListFilter,
    ProcessOriginator, ProcessProvenance, ProcessRegistration, ProcessStarted,
    ProcessValueSelector, ProcessWakeDedupeKey, SessionScope, WaitKind, WaitState,
};

/// Context-free checks of a caller-supplied value: sizes, nesting depth,
/// required fields, well-formed names. Refusals are `InvalidInput`.
pub trait Validate {
    /// `Ok` when the value may be stored.
    fn validate(&self) -> ProcessResult<()>;
}

impl<T: Validate> Validate for Option<T> {
    fn validate(&self) -> ProcessResult<()> {
        self.as_ref().map_or(Ok(()), Validate::validate)
    }
}

impl Validate for u64 {
    fn validate(&self) -> ProcessResult<()> {
        Ok(())
    }
}

impl Validate for SessionScope {
    fn validate(&self) -> ProcessResult<()> {
        check_key("session id", &self.session_id)?;
        check_optional_key("agent frame id", self.agent_frame_id.as_deref())
    }
}

impl Validate for ProcessHandleDescriptor {
    fn validate(&self) -> ProcessResult<()> {
        check_key("handle kind", &self.kind)?;
        check_text("handle label", &self.label)
    }
}

impl Validate for ProcessInput {
    fn validate(&self) -> ProcessResult<()> {
        match self {
            Self::External { metadata } => check_document("input metadata", metadata),
            Self::Engine { kind, payload } => {
                check_key("engine input kind", kind)?;
                check_document("engine input payload", payload)
            }
        }
    }
}

impl Validate for ProcessIdentity {
    fn validate(&self) -> ProcessResult<()> {
        check_key("identity kind", &self.kind)?;
        check_text("identity label", &self.label)?;
        check_optional_key("identity definition", self.definition.as_deref())
    }
}

impl Validate for ProcessProvenance {
    fn validate(&self) -> ProcessResult<()> {
        match &self.originator {
            ProcessOriginator::Host { scope } => check_key("host scope", scope)?,
            ProcessOriginator::Session { scope } => scope.validate()?,
        }
        check_optional_document("provenance cause", self.caused_by.as_ref())
    }
}

fn check_value_selector(type_name: &str, selector: &ProcessValueSelector) -> ProcessResult<()> {
    check_selector(type_name, selector)?;
    check_selector_sizes(selector)
}

/// The sizes of every text and constant in a selector (its shape is
/// [`check_selector`]'s, which bounds the recursion first).
fn check_selector_sizes(selector: &ProcessValueSelector) -> ProcessResult<()> {
    match selector {
        ProcessValueSelector::Payload => Ok(()),
        ProcessValueSelector::Pointer(pointer) | ProcessValueSelector::Present(pointer) => {
            check_text("selector pointer", pointer)
        }
        ProcessValueSelector::Const(value) => check_document("selector constant", value),
        ProcessValueSelector::Template { template, fields } => {
            check_text("selector template", template)?;
            fields.iter().try_for_each(|(name, field)| {
                check_key("template field name", name)?;
                check_selector_sizes(field)
            })
        }
    }
}

impl Validate for ProcessEventType {
    fn validate(&self) -> ProcessResult<()> {
        let name = self.name.as_str();
        check_key("event type name", name)?;
        if name.trim().is_empty() {
            return Err(ProcessError::invalid("event type names must not be blank"));
        }
        if ProcessEventType::is_core(name) {
            return Err(ProcessError::invalid(format!(
                "event type `{name}` is built in: every process already has it"
            )));
        }
        check_document("payload schema", self.payload_schema.as_json())?;
        check_schema(name, &self.payload_schema)?;
        let semantics = &self.semantics;
        if let Some(wake) = &semantics.wake {
            if let Some(when) = &wake.when {
                check_value_selector(name, when)?;
            }
            check_value_selector(name, &wake.input)?;
            match &wake.dedupe_key {
                ProcessWakeDedupeKey::EventIdentity => {}
                ProcessWakeDedupeKey::Selector(selector) => check_value_selector(name, selector)?,
                ProcessWakeDedupeKey::Const(key) => check_key("wake dedupe key", key)?,
            }
        }
        if let Some(output) = semantics
            .terminal
            .as_ref()
            .and_then(|terminal| terminal.await_output.as_ref())
        {
            check_value_selector(name, output)?;
        }
        Ok(())
    }
}

impl Validate for ProcessRegistration {
    fn validate(&self) -> ProcessResult<()> {
        check_process_id(&self.id)?;
        self.input.validate()?;
        self.identity.validate()?;
        self.provenance.validate()?;
        self.wake_target.validate()?;
        let mut names = BTreeSet::new();
        for event_type in &self.event_types {
            event_type.validate()?;
            if !names.insert(event_type.name.as_str()) {
                return Err(ProcessError::invalid(format!(
                    "event type `{}` is declared twice",
                    event_type.name
                )));
            }
        }
        check_size("registration", self)
    }
}

impl Validate for ProcessExternalRef {
    fn validate(&self) -> ProcessResult<()> {
        check_key("external ref backend", &self.backend)?;
        check_key("external ref id", &self.id)?;
        check_document("external ref metadata", &self.metadata)
    }
}

impl Validate for ProcessEventAppendRequest {
    fn validate(&self) -> ProcessResult<()> {
        check_key("event type", &self.event_type)?;
        check_document("event payload", &self.payload)?;
        check_optional_key("replay key", self.replay_key.as_deref())?;
        self.wake_target_scope.validate()
    }
}

impl Validate for ProcessAwaitOutput {
    fn validate(&self) -> ProcessResult<()> {
        let control = |control: &Option<serde_json::Value>| {
            check_optional_document("outcome control", control.as_ref())
        };
        match self {
            Self::Success { value, control: c } => {
                check_document("outcome value", value)?;
                control(c)?;
            }
            Self::Failure {
                code,
                message,
                raw,
                control: c,
            } => {
                check_key("failure code", code)?;
                check_text("failure message", message)?;
                check_optional_document("failure raw", raw.as_ref())?;
                control(c)?;
            }
            Self::Cancelled {
                message,
                raw,
                control: c,
            } => {
                message
                    .as_deref()
                    .map_or(Ok(()), |message| check_text("cancel message", message))?;
                check_optional_document("cancel raw", raw.as_ref())?;
                control(c)?;
            }
            Self::Abandoned {
                evidence,
                control: c,
            } => {
                check_document("abandon evidence", evidence)?;
                control(c)?;
            }
        }
        check_size("outcome", self)
    }
}

impl Validate for LeaseOwnerIdentity {
    fn validate(&self) -> ProcessResult<()> {
        check_key("lease owner id", &self.owner_id)?;
        check_key("lease owner incarnation", &self.incarnation_id)?;
        if let LeaseOwnerLiveness::LocalProcess {
            host_id,
            boot_id,
            process_start,
            ..
        } = &self.liveness
        {
            check_key("lease owner host", host_id)?;
            for (what, text) in [("boot id", boot_id), ("process start", process_start)] {
                if !text.is_empty() {
                    check_key(what, text)?;
                }
            }
        }
        Ok(())
    }
}

impl Validate for ProcessLease {
    fn validate(&self) -> ProcessResult<()> {
        check_process_id(&self.process_id)?;
        self.owner.validate()?;
        check_key("lease token", &self.lease_token)
    }
}

impl Validate for ProcessLeaseCompletion {
    fn validate(&self) -> ProcessResult<()> {
        check_process_id(&self.process_id)?;
        check_key("lease token", &self.lease_token)
    }
}

impl Validate for ProcessStarted {
    fn validate(&self) -> ProcessResult<()> {
        self.owner.validate()
    }
}

impl Validate for AbandonRequest {
    fn validate(&self) -> ProcessResult<()> {
        check_key("abandon requester", &self.requested_by)?;
        check_text("abandon reason", &self.reason)
    }
}

impl Validate for WaitState {
    fn validate(&self) -> ProcessResult<()> {
        match &self.kind {
            WaitKind::Signal {
                name,
                event_type,
                key,
                ordinal: _,
            } => {
                check_key("wait signal name", name)?;
                check_key("wait event type", event_type)?;
                check_key("wait key", key)
            }
        }
    }
}

impl Validate for ProcessListFilter {
    fn validate(&self) -> ProcessResult<()> {
        if let Some(scope_id) = &self.originator_scope_id {
            check_text("originator scope id filter", scope_id)?;
        }
        check_optional_key("identity kind filter", self.identity_kind.as_deref())?;
        if let Some(label) = &self.identity_label {
            check_text("identity label filter", label)?;
        }
        check_optional_key("definition filter", self.definition.as_deref())
    }
}

/// A transfer's scopes and the number of ids it names (at most
/// [`MAX_TRANSFER_IDS`]); each id is then looked up like any other.
pub fn check_transfer(
    from: &SessionScope,
    to: &SessionScope,
    process_ids: &[String],
) -> ProcessResult<()> {
    from.validate()?;
    to.validate()?;
    if process_ids.len() > MAX_TRANSFER_IDS {
        return Err(ProcessError::invalid(format!(
            "a transfer names {} processes; the limit is {MAX_TRANSFER_IDS}",
            process_ids.len()
        )));
    }
    Ok(())
}
