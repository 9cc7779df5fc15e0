//! The privileged control API on the Unix socket (HTTP/1.1 + JSON under
//! `/v1/`). Callers are identified by their peer credentials: root, the
//! daemon's own user and members of `claw-admin` are served; anyone else is
//! refused with 403 on every request.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Group, Uid, User};

use crate::app::App;
use crate::service::{LocalCaller, ServiceError};

mod handlers;
mod polkit;

/// The group whose members may use the control socket.
pub const ADMIN_GROUP: &str = "claw-admin";

/// Who is on the other end of a control connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

type Ctx = Arc<App>;

/// The router for one connection: the API for an authorised caller, a
/// refusal for anyone else. Root, the daemon's user and `claw-admin` are
/// let in at once; anyone else is asked of polkit when it is there.
pub fn router_for(
    context: &Ctx,
    stream: &tokio::net::UnixStream,
) -> impl std::future::Future<Output = Router> + Send + use<> {
    let peer = getsockopt(stream, PeerCredentials).map(|c| Peer {
        uid: c.uid(),
        gid: c.gid(),
        pid: c.pid(),
    });
    let context = Arc::clone(context);
    async move {
        match peer {
            Ok(caller) => admit(&context, caller).await,
            Err(e) => refuse(format!("cannot identify the caller: {e}")),
        }
    }
}

async fn admit(context: &Ctx, caller: Peer) -> Router {
    let admitted = if in_admin_group(caller) {
        true
    } else {
        match polkit::authorised(caller).await {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::debug!(uid = caller.uid, error = %e, "polkit not asked");
                false
            }
        }
    };
    if admitted {
        tracing::debug!(uid = caller.uid, pid = caller.pid, "control connection");
        let name = User::from_uid(Uid::from_raw(caller.uid))
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {}", caller.uid), |u| u.name);
        let local = LocalCaller {
            uid: caller.uid,
            pid: caller.pid,
            name,
        };
        return handlers::router(Arc::clone(context)).layer(axum::Extension(local));
    }
    tracing::warn!(
        uid = caller.uid,
        pid = caller.pid,
        "control connection refused"
    );
    refuse(format!(
        "uid {} may not use the claw control socket: run as root or as a member of the \
         {ADMIN_GROUP} group (sudo usermod -aG {ADMIN_GROUP} USER, then log in again), \
         or allow {} in polkit",
        caller.uid,
        polkit::ACTION_ID
    ))
}

fn refuse(message: String) -> Router {
    Router::new().fallback(move || {
        let message = message.clone();
        async move {
            let mut response = ServiceError::forbidden(message).into_response();
            *response.status_mut() = StatusCode::FORBIDDEN;
            response
        }
    })
}

fn in_admin_group(caller: Peer) -> bool {
    if caller.uid == 0 || caller.uid == Uid::effective().as_raw() {
        return true;
    }
    let Ok(Some(group)) = Group::from_name(ADMIN_GROUP) else {
        return false;
    };
    if caller.gid == group.gid.as_raw() {
        return true;
    }
    match User::from_uid(Uid::from_raw(caller.uid)) {
        Ok(Some(user)) => {
            user.gid == group.gid || group.mem.contains(&user.name) || in_group(&user, group.gid)
        }
        _ => false,
    }
}

/// Supplementary groups from the group database (covers NSS sources whose
/// member lists are not enumerated in `Group::mem`).
fn in_group(user: &User, gid: Gid) -> bool {
    let Ok(name) = std::ffi::CString::new(user.name.as_str()) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&gid))
}
