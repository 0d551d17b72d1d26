//! The one place that decides who may see and change what in a project. Every
//! project-scoped resource resolves its project through [`Control::project_access`] and
//! lists through [`ProjectScope`], so tenancy is enforced in the query.

use roost_api::auth::Role;
use roost_store::projects::ProjectRow;

use crate::kernel::{Actor, Authorized};
use crate::{Control, Error, Principal, Result};

/// A project the principal may see, and its effective role there.
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    pub project: ProjectRow,
    /// `admin` for admins; otherwise the membership role, capped by the user's role.
    pub role: Role,
    actor: Actor,
}

impl ProjectAccess {
    /// Fails with 403 unless the role may create, change and delete resources here; the
    /// proof opens changes in the project.
    pub fn require_write(&self) -> Result<ProjectWrite> {
        if self.role >= Role::Operator {
            return Ok(ProjectWrite { project: self.project.clone(), actor: self.actor.clone() });
        }
        Err(Error::forbidden(format!("you are a viewer in project '{}': read only", self.project.name)))
    }
}

/// Proof that its actor may change resources in `project` (see [`ProjectAccess::require_write`]).
#[derive(Debug, Clone)]
pub struct ProjectWrite {
    pub project: ProjectRow,
    actor: Actor,
}

impl Authorized for ProjectWrite {
    fn actor(&self) -> Actor {
        self.actor.clone()
    }
}

/// Which projects a listing may return rows from; the store turns it into a WHERE clause.
pub use roost_store::list::ProjectScope;

impl Control {
    /// Resolves a project by id or name for the principal. A project they may not see is
    /// "not found" (404), exactly like one that does not exist.
    pub async fn project_access(&self, principal: &Principal, key: &str) -> Result<ProjectAccess> {
        let not_found = || Error::not_found("project", key);
        let project = self.store().project_by_key(key).await?.ok_or_else(not_found)?;
        if principal.project_id.as_deref().is_some_and(|only| only != project.id) {
            return Err(not_found());
        }
        let role = if principal.role == Role::Admin {
            Role::Admin
        } else {
            let membership = self.store().membership(&project.id, &principal.user_id).await?.ok_or_else(not_found)?;
            Role::parse(&membership).unwrap_or(Role::Viewer).min(principal.role).min(Role::Operator)
        };
        Ok(ProjectAccess { project, role, actor: principal.actor() })
    }

    /// The projects a listing may draw from: all for admins, the one project of a
    /// restricted token, else the user's memberships.
    pub fn project_scope(&self, principal: &Principal) -> ProjectScope {
        match (&principal.project_id, principal.role) {
            (Some(project), _) => ProjectScope::One(project.clone()),
            (None, Role::Admin) => ProjectScope::All,
            (None, _) => ProjectScope::MemberOf(principal.user_id.clone()),
        }
    }
}

impl Control {
    /// The ids of the projects whose events the principal may see (empty for admins,
    /// who see all).
    pub async fn visible_project_ids(&self, principal: &Principal) -> Result<std::collections::HashSet<String>> {
        Ok(match self.project_scope(principal) {
            ProjectScope::All => Default::default(),
            ProjectScope::One(id) => [id].into(),
            ProjectScope::MemberOf(user) => {
                let query = roost_store::ListQuery {
                    limit: 10_000,
                    sort: roost_store::SortKey { field: "created_at", text: false },
                    descending: false,
                    after: None,
                    name_like: None,
                };
                let (rows, _) = self.store().list_projects(Some(&user), &query).await?;
                rows.into_iter().map(|r| r.id).collect()
            }
        })
    }
}
