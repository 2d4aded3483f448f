//! Filters for `list_processes`.

use serde::{Deserialize, Serialize};

use super::{ProcessRecord, ProcessStatusKind, ProcessSummary};

/// Which statuses a listing returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatusFilter {
    /// Non-terminal rows only.
    #[default]
    Running,
    /// Completed rows only.
    Completed,
    /// Failed rows only.
    Failed,
    /// Cancelled rows only.
    Cancelled,
    /// Abandoned rows only.
    Abandoned,
    /// Every terminal row.
    Terminal,
    /// Every row.
    Any,
}

impl ProcessStatusFilter {
    /// Whether a status kind passes.
    pub fn matches(self, status: ProcessStatusKind) -> bool {
        use ProcessStatusKind as Kind;
        match self {
            Self::Any => true,
            Self::Terminal => status.is_terminal(),
            Self::Running => status == Kind::Running,
            Self::Completed => status == Kind::Completed,
            Self::Failed => status == Kind::Failed,
            Self::Cancelled => status == Kind::Cancelled,
            Self::Abandoned => status == Kind::Abandoned,
        }
    }
}

/// Conditions a listed row must meet; unset fields match everything.
///
/// On the wire it is a JSON object with only these fields: an array or an
/// unknown field is refused rather than read as the default filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ProcessListFilter {
    /// Status; running by default.
    #[serde(default)]
    pub status: ProcessStatusFilter,
    /// Whether the row has a wait set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<bool>,
    /// The originator's scope id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originator_scope_id: Option<String>,
    /// `identity.kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_kind: Option<String>,
    /// `identity.label`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_label: Option<String>,
    /// `identity.definition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// Created at or after this time (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_start_ms: Option<u64>,
    /// Created before this time (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_end_ms: Option<u64>,
}

impl Serialize for ProcessListFilter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Self::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for ProcessListFilter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Serde's derive also accepts a sequence for a struct; ask for a map.
        let fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        Self::deserialize(serde_json::Value::Object(fields)).map_err(serde::de::Error::custom)
    }
}

impl ProcessListFilter {
    /// Every row, whatever its status.
    pub fn any() -> Self {
        Self {
            status: ProcessStatusFilter::Any,
            ..Self::default()
        }
    }

    /// Whether a row passes every set condition.
    pub fn matches(&self, record: &ProcessRecord) -> bool {
        self.matches_summary(&ProcessSummary::of(record))
    }

    /// Whether a row with this summary passes every set condition.
    pub fn matches_summary(&self, row: &ProcessSummary) -> bool {
        let equals = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|want| have == Some(want))
        };
        self.status.matches(row.status)
            && self.waiting.is_none_or(|waiting| waiting == row.waiting)
            && equals(&self.originator_scope_id, Some(&row.originator_scope_id))
            && equals(&self.identity_kind, Some(&row.identity.kind))
            && equals(&self.identity_label, Some(&row.identity.label))
            && equals(&self.definition, row.identity.definition.as_deref())
            && self
                .created_at_start_ms
                .is_none_or(|start| row.created_at_ms >= start)
            && self
                .created_at_end_ms
                .is_none_or(|end| row.created_at_ms < end)
    }
}
