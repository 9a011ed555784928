//! The roles kubegate knows and what each includes. Plain vocabulary: the policy (in `auth`) grants
//! them, settings (in `config`) name them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A role. Each includes the permissions of those before it in its line:
/// viewer < deployer < admin; auditor stands alone and admin includes it. `delegate` (a bot may act
/// for the people the policy file names, within its own grants) stands alone: admin does not
/// include it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[schema(example = "deployer")]
pub enum Role {
    Viewer,
    Deployer,
    Admin,
    Auditor,
    Delegate,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        // Exact, lower case: `Admin` is not `admin` (a case-folding IdP mapping is a mistake to see).
        match s {
            "viewer" => Some(Self::Viewer),
            "deployer" => Some(Self::Deployer),
            "admin" => Some(Self::Admin),
            "auditor" => Some(Self::Auditor),
            "delegate" => Some(Self::Delegate),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Deployer => "deployer",
            Self::Admin => "admin",
            Self::Auditor => "auditor",
            Self::Delegate => "delegate",
        }
    }

    pub(crate) fn includes(self, needed: Role) -> bool {
        match self {
            Self::Admin => needed != Self::Delegate,
            Self::Deployer => matches!(needed, Self::Viewer | Self::Deployer),
            Self::Viewer => needed == Self::Viewer,
            Self::Auditor => needed == Self::Auditor,
            Self::Delegate => needed == Self::Delegate,
        }
    }
}
