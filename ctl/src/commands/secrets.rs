//! `clawctl secrets rotate hmac|auth|vapid`.

use claw_proto::control::{RotateReply, RotateRequest, SecretName};

use super::show;
use crate::cli::RotateSecret;
use crate::client::Client;
use crate::error::CtlError;
use crate::output::{Text, opt};

pub async fn rotate(client: &Client, which: RotateSecret, json: bool) -> Result<(), CtlError> {
    let request = match which {
        RotateSecret::Hmac { grace } => RotateRequest {
            secret: SecretName::Hmac,
            grace_secs: Some(grace.as_secs()),
        },
        RotateSecret::Auth => RotateRequest {
            secret: SecretName::Auth,
            grace_secs: None,
        },
        RotateSecret::Vapid => RotateRequest {
            secret: SecretName::Vapid,
            grace_secs: None,
        },
    };
    let reply: RotateReply = client.post("/v1/secrets/rotate", &request).await?;
    show(json, &reply, render)
}

fn render(r: &RotateReply) -> String {
    let mut out = Text::new();
    if let Some(secret) = &r.hmac_secret {
        out.line("New HMAC secret (shown only now; set it as CLAW_HMAC_SECRET on every runner):");
        out.line(secret);
        out.line(format_args!(
            "The old secret keeps working until {}.",
            opt(r.previous_valid_until.as_deref())
        ));
    } else if let Some(removed) = r.subscriptions_removed {
        out.line(format_args!(
            "New Web Push (VAPID) key; {removed} browser {} removed.",
            if removed == 1 {
                "subscription"
            } else {
                "subscriptions"
            }
        ));
        out.line(
            "Browsers cannot be told of the new key: users who want notifications must \
             enable them again in Account, on each device.",
        );
    } else {
        out.line(format_args!(
            "New session secret; {} sessions ended, everybody logs in again.",
            opt(r.sessions_ended)
        ));
    }
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_read_as_before() {
        let hmac = RotateReply {
            ok: true,
            hmac_secret: Some("abc".into()),
            previous_valid_until: Some("t".into()),
            sessions_ended: None,
            subscriptions_removed: None,
        };
        assert_eq!(
            render(&hmac),
            "New HMAC secret (shown only now; set it as CLAW_HMAC_SECRET on every runner):\n\
             abc\n\
             The old secret keeps working until t.\n"
        );
        let auth = RotateReply {
            ok: true,
            hmac_secret: None,
            previous_valid_until: None,
            sessions_ended: Some(2),
            subscriptions_removed: None,
        };
        assert_eq!(
            render(&auth),
            "New session secret; 2 sessions ended, everybody logs in again.\n"
        );
        let vapid = RotateReply {
            ok: true,
            hmac_secret: None,
            previous_valid_until: None,
            sessions_ended: None,
            subscriptions_removed: Some(3),
        };
        assert_eq!(
            render(&vapid),
            "New Web Push (VAPID) key; 3 browser subscriptions removed.\n\
             Browsers cannot be told of the new key: users who want notifications must \
             enable them again in Account, on each device.\n"
        );
    }
}
